"""Building an index folder: in one process (``build_folder``) or from the parts and
shards the workers wrote (``assemble_folder``), then tuned, evaluated and given the recall
probe an update samples."""
