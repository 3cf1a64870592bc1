-- Schema version 3: the components of the plugins runs pin, content-addressed, so that a process
-- that has not installed a pinned plugin (a worker on another machine) can still load it; the
-- loader checks the bytes against the sha256 before it compiles them.
CREATE TABLE plugin_components (
    sha256  TEXT PRIMARY KEY,              -- hex sha256 of the component's bytes
    name    TEXT NOT NULL,                 -- the plugin's name and version, for people
    version TEXT NOT NULL,
    bytes   BLOB NOT NULL
) WITHOUT ROWID;
