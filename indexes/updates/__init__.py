"""Updating a live version's index in place instead of rebuilding it: a delta segment and
tombstones over the main index, retrained or compacted when the policy says so."""
