-- Schema version 2: a lease names the boot of the machine its holder runs on. On the same boot,
-- whether the holder lives is told by an OS lock beside the journal (see run/lease.rs), which
-- sees through PID namespaces and cannot be fooled by a reused process id; a lease from another
-- boot or machine (or written before this column) is taken over only once it expired.
ALTER TABLE leases ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
