"""What an index folder is on disk or in an object store: files and their digests, the
manifest, the metadata tables and id-range parts (and layers over a live version's), ids,
the object stores, versions with CURRENT, and the readers' cache of remote versions."""
