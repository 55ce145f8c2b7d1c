//! A SQLite VFS that counts the syncs a database asks the disk for.
//!
//! [`SyncCounter::register`] registers a VFS under a fresh name that wraps the platform's
//! default one (`unix` here): every file it opens is the default VFS's file, with each method
//! forwarded unchanged, except that `xSync` (an fsync, or `F_FULLFSYNC` on Apple platforms)
//! and `xDelete` with its directory-sync flag bump a counter first. Open a connection on it
//! (presence-core takes the name through `Overrides::sqlite_vfs`) and the counter says how
//! many times SQLite really made the disk flush: not what the code meant to do, what it did.
//! So a test built on it fails when anything (a pragma, a checkpoint, a new write path) makes
//! an incoming event pay an fsync again.
//!
//! It can also hold writes to the write-ahead log ([`SyncCounter::hold_wal_writes`]), as a
//! disk that stops answering would, so a test can show what does and does not wait for one,
//! or fail them ([`SyncCounter::fail_wal_writes`]), as a full or broken disk would.
//!
//! Each registration has its own counter, so tests running in parallel do not see each
//! other's syncs. A registered VFS lives as long as the process (SQLite keeps a pointer).

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::ffi;

/// How many syncs went through one registered VFS.
#[derive(Debug, Default)]
pub struct SyncCounter {
    name: String,
    /// `xSync` on the main database file.
    db: AtomicU64,
    /// `xSync` on the write-ahead log.
    wal: AtomicU64,
    /// `xSync` on any other file (a rollback journal, a temporary file).
    other: AtomicU64,
    /// Directory syncs requested by `xDelete`.
    dir: AtomicU64,
    /// While true, writes to the write-ahead log wait (see [`SyncCounter::hold_wal_writes`]).
    gate: std::sync::Mutex<Gate>,
    gate_changed: std::sync::Condvar,
    /// While true, writes to the write-ahead log fail with `SQLITE_IOERR_WRITE`.
    failing: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Gate {
    closed: bool,
    /// Writes waiting at the gate now.
    waiting: u64,
}

/// The counts at one moment; subtract two to get what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub db: u64,
    pub wal: u64,
    pub other: u64,
    pub dir: u64,
}

impl SyncCounts {
    /// Every sync of any kind.
    pub fn total(&self) -> u64 {
        self.db + self.wal + self.other + self.dir
    }
}

impl std::ops::Sub for SyncCounts {
    type Output = SyncCounts;
    fn sub(self, o: SyncCounts) -> SyncCounts {
        SyncCounts {
            db: self.db - o.db,
            wal: self.wal - o.wal,
            other: self.other - o.other,
            dir: self.dir - o.dir,
        }
    }
}

impl SyncCounter {
    /// Registers a new counting VFS (not the default one) and returns its counter. Its name
    /// is [`SyncCounter::vfs_name`].
    pub fn register() -> Arc<SyncCounter> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("presence-count-sync-{}-{n}", std::process::id());
        let counter = Arc::new(SyncCounter {
            name: name.clone(),
            ..SyncCounter::default()
        });
        // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, which lives for the
        // process. The new VFS struct and its name are leaked on purpose: SQLite keeps
        // pointers to both until the process ends.
        unsafe {
            let rc = ffi::sqlite3_initialize();
            assert_eq!(rc, ffi::SQLITE_OK, "sqlite3_initialize");
            let real = ffi::sqlite3_vfs_find(std::ptr::null());
            assert!(!real.is_null(), "no default SQLite VFS");
            let mut base = *real;
            base.szOsFile = (std::mem::size_of::<ShimFile>() as c_int) + (*real).szOsFile;
            base.zName = CString::new(name).expect("vfs name").into_raw();
            base.pNext = std::ptr::null_mut();
            base.xOpen = Some(shim_open);
            base.xDelete = Some(shim_delete);
            let shim = Box::into_raw(Box::new(ShimVfs {
                base,
                real,
                counter: Arc::into_raw(counter.clone()),
            }));
            let rc = ffi::sqlite3_vfs_register(shim.cast(), 0);
            assert_eq!(rc, ffi::SQLITE_OK, "sqlite3_vfs_register");
        }
        counter
    }

    /// The name to open a connection with (`Overrides::sqlite_vfs`).
    pub fn vfs_name(&self) -> &str {
        &self.name
    }

    /// From now on every write to the write-ahead log waits, as on a disk that has stopped
    /// answering, until [`SyncCounter::release_wal_writes`].
    pub fn hold_wal_writes(&self) {
        self.gate.lock().expect("gate").closed = true;
    }

    pub fn release_wal_writes(&self) {
        self.gate.lock().expect("gate").closed = false;
        self.gate_changed.notify_all();
    }

    /// From now on every write to the write-ahead log fails (`SQLITE_IOERR_WRITE`), as on a
    /// full or broken disk, until [`SyncCounter::heal_wal_writes`]. A write held at the gate
    /// fails too once released.
    pub fn fail_wal_writes(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }

    pub fn heal_wal_writes(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// Blocks until a write waits at the closed gate, or `within` passes; says which.
    pub fn wait_for_held_write(&self, within: std::time::Duration) -> bool {
        let g = self.gate.lock().expect("gate");
        let (g, _) = self
            .gate_changed
            .wait_timeout_while(g, within, |g| g.waiting == 0)
            .expect("gate");
        g.waiting > 0
    }

    fn pass_gate(&self) {
        let mut g = self.gate.lock().expect("gate");
        if !g.closed {
            return;
        }
        g.waiting += 1;
        self.gate_changed.notify_all();
        let mut g = self.gate_changed.wait_while(g, |g| g.closed).expect("gate");
        g.waiting -= 1;
    }

    pub fn counts(&self) -> SyncCounts {
        SyncCounts {
            db: self.db.load(Ordering::SeqCst),
            wal: self.wal.load(Ordering::SeqCst),
            other: self.other.load(Ordering::SeqCst),
            dir: self.dir.load(Ordering::SeqCst),
        }
    }
}

/// `base` first, so SQLite's `sqlite3_vfs*` is also a `ShimVfs*`.
#[repr(C)]
struct ShimVfs {
    base: ffi::sqlite3_vfs,
    real: *mut ffi::sqlite3_vfs,
    counter: *const SyncCounter,
}

#[derive(Clone, Copy)]
enum Kind {
    Db,
    Wal,
    Other,
}

/// `base` first (SQLite reads `pMethods` from it); the real VFS's file follows in the same
/// allocation (`szOsFile` covers both).
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    counter: *const SyncCounter,
    kind: Kind,
}

unsafe extern "C" fn shim_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: `vfs` is the `ShimVfs` registered above; `file` points to `szOsFile` bytes,
    // room for a `ShimFile` followed by the real file.
    unsafe {
        let shim = vfs.cast::<ShimVfs>();
        let me = file.cast::<ShimFile>();
        let real_file = file
            .cast::<u8>()
            .add(std::mem::size_of::<ShimFile>())
            .cast::<ffi::sqlite3_file>();
        (*me).base.pMethods = std::ptr::null();
        let real = (*shim).real;
        let Some(open) = (*real).xOpen else {
            return ffi::SQLITE_ERROR;
        };
        let rc = open(real, name, real_file, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*real_file).pMethods.is_null() {
            return rc;
        }
        (*me).real = real_file;
        (*me).counter = (*shim).counter;
        (*me).kind = if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            Kind::Db
        } else if flags & ffi::SQLITE_OPEN_WAL != 0 {
            Kind::Wal
        } else {
            Kind::Other
        };
        (*me).base.pMethods = &IO_METHODS;
        rc
    }
}

unsafe extern "C" fn shim_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    // SAFETY: as in `shim_open`.
    unsafe {
        let shim = vfs.cast::<ShimVfs>();
        if sync_dir != 0 {
            (*(*shim).counter).dir.fetch_add(1, Ordering::SeqCst);
        }
        let real = (*shim).real;
        match (*real).xDelete {
            Some(delete) => delete(real, name, sync_dir),
            None => ffi::SQLITE_ERROR,
        }
    }
}

/// The real file and its methods.
///
/// # Safety
/// `f` must be a file opened by `shim_open`.
unsafe fn real(
    f: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    unsafe {
        let real = (*f.cast::<ShimFile>()).real;
        (real, &*(*real).pMethods)
    }
}

macro_rules! forward {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite only calls these on files `shim_open` opened.
            unsafe {
                let (real, m) = real(f);
                match m.$method {
                    Some(g) => g(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

forward!(shim_close, xClose, () -> c_int, ffi::SQLITE_OK);
forward!(shim_read, xRead, (buf: *mut c_void, amt: c_int, off: ffi::sqlite3_int64) -> c_int, ffi::SQLITE_IOERR);
unsafe extern "C" fn shim_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: as for the forwarded methods.
    unsafe {
        let me = f.cast::<ShimFile>();
        if matches!((*me).kind, Kind::Wal) {
            let counter = &*(*me).counter;
            counter.pass_gate();
            if counter.failing.load(Ordering::SeqCst) {
                return ffi::SQLITE_IOERR_WRITE;
            }
        }
        let (real, m) = real(f);
        match m.xWrite {
            Some(g) => g(real, buf, amt, off),
            None => ffi::SQLITE_IOERR,
        }
    }
}
forward!(shim_truncate, xTruncate, (size: ffi::sqlite3_int64) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_file_size, xFileSize, (size: *mut ffi::sqlite3_int64) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_lock, xLock, (level: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_unlock, xUnlock, (level: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_check_reserved, xCheckReservedLock, (out: *mut c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_file_control, xFileControl, (op: c_int, arg: *mut c_void) -> c_int, ffi::SQLITE_NOTFOUND);
forward!(shim_sector_size, xSectorSize, () -> c_int, 4096);
forward!(shim_device_chars, xDeviceCharacteristics, () -> c_int, 0);
forward!(shim_shm_map, xShmMap, (region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(shim_shm_unmap, xShmUnmap, (delete: c_int) -> c_int, ffi::SQLITE_OK);
forward!(shim_fetch, xFetch, (off: ffi::sqlite3_int64, amt: c_int, out: *mut *mut c_void) -> c_int, {
    // `out` is SQLite's out-pointer; no mapping means "read it instead".
    *out = std::ptr::null_mut();
    ffi::SQLITE_OK
});
forward!(shim_unfetch, xUnfetch, (off: ffi::sqlite3_int64, p: *mut c_void) -> c_int, ffi::SQLITE_OK);

unsafe extern "C" fn shim_shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: as for the forwarded methods.
    unsafe {
        let (real, m) = real(f);
        if let Some(g) = m.xShmBarrier {
            g(real)
        }
    }
}

unsafe extern "C" fn shim_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: as for the forwarded methods.
    unsafe {
        let me = f.cast::<ShimFile>();
        let counter = &*(*me).counter;
        match (*me).kind {
            Kind::Db => &counter.db,
            Kind::Wal => &counter.wal,
            Kind::Other => &counter.other,
        }
        .fetch_add(1, Ordering::SeqCst);
        let (real, m) = real(f);
        match m.xSync {
            Some(g) => g(real, flags),
            None => ffi::SQLITE_IOERR,
        }
    }
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(shim_close),
    xRead: Some(shim_read),
    xWrite: Some(shim_write),
    xTruncate: Some(shim_truncate),
    xSync: Some(shim_sync),
    xFileSize: Some(shim_file_size),
    xLock: Some(shim_lock),
    xUnlock: Some(shim_unlock),
    xCheckReservedLock: Some(shim_check_reserved),
    xFileControl: Some(shim_file_control),
    xSectorSize: Some(shim_sector_size),
    xDeviceCharacteristics: Some(shim_device_chars),
    xShmMap: Some(shim_shm_map),
    xShmLock: Some(shim_shm_lock),
    xShmBarrier: Some(shim_shm_barrier),
    xShmUnmap: Some(shim_shm_unmap),
    xFetch: Some(shim_fetch),
    xUnfetch: Some(shim_unfetch),
};

/// The name SQLite knows a VFS by (for diagnostics).
pub fn default_vfs_name() -> String {
    // SAFETY: the default VFS and its name live for the process.
    unsafe {
        let v = ffi::sqlite3_vfs_find(std::ptr::null());
        if v.is_null() || (*v).zName.is_null() {
            return String::new();
        }
        CStr::from_ptr((*v).zName).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path, c: &SyncCounter) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags_and_vfs(
            dir.join("t.db"),
            rusqlite::OpenFlags::default(),
            c.vfs_name(),
        )
        .unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER);")
            .unwrap();
        conn
    }

    #[test]
    fn a_full_commit_syncs_the_wal_and_a_normal_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let c = SyncCounter::register();
        let conn = open(dir.path(), &c);
        conn.execute_batch("PRAGMA synchronous=FULL").unwrap();
        let before = c.counts();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let full = c.counts() - before;
        assert!(full.wal >= 1, "{full:?}");
        conn.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
        let before = c.counts();
        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!((c.counts() - before).total(), 0);
    }

    #[test]
    fn counters_of_two_registrations_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let a = SyncCounter::register();
        let b = SyncCounter::register();
        assert_ne!(a.vfs_name(), b.vfs_name());
        let conn = open(dir.path(), &a);
        conn.execute_batch("PRAGMA synchronous=FULL").unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert!(a.counts().total() > 0);
        assert_eq!(b.counts().total(), 0);
        assert!(!default_vfs_name().is_empty());
    }
}
