"""The only writer of outputs: atomic files, atomic folders with a completion marker, safe formats, the manifest.

Nothing here ever unpickles: arrays go through safetensors or ``np.load(allow_pickle=False)``, tables through
parquet, metadata through JSON. A crash mid-write leaves the previous file (or none), never half a file.
``files`` writes and reads single files, ``folders`` writes and verifies whole run and dataset folders, ``manifest``
names a run folder's paths and records what produced it. See docs/run-folder.md and docs/reliability.md.
"""

from geotower.artifacts.files import (
    ID_COLUMNS,
    atomic_path,
    check_finite,
    file_sha256,
    fingerprint,
    fingerprint_diff,
    load_arrays,
    read_json,
    read_table,
    save_arrays,
    write_bytes,
    write_json,
    write_table,
    write_text,
    write_with,
)
from geotower.artifacts.folders import (
    COMPLETE,
    MARKER_FORMAT,
    check_output_dir,
    check_output_file,
    read_marker,
    recover_folder,
    staged_folder,
    staging_path,
    verify_folder,
    write_marker,
)
from geotower.artifacts.manifest import (
    CONFIG_JSON,
    MANIFEST,
    MANIFEST_FORMAT,
    RunLayout,
    RunManifest,
    library_versions,
    read_manifest,
    write_manifest,
)

__all__ = [
    "COMPLETE", "CONFIG_JSON", "ID_COLUMNS", "MANIFEST", "MANIFEST_FORMAT", "MARKER_FORMAT",
    "RunLayout", "RunManifest",
    "atomic_path", "check_finite", "check_output_dir", "check_output_file", "file_sha256", "fingerprint",
    "fingerprint_diff", "library_versions", "load_arrays", "read_json", "read_manifest", "read_marker", "read_table",
    "recover_folder", "save_arrays", "staged_folder", "staging_path", "verify_folder", "write_bytes", "write_json",
    "write_manifest", "write_marker", "write_table", "write_text", "write_with",
]
