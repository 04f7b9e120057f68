//! Opening the files a user names: regular files only (a FIFO would block
//! the read, a device such as `/dev/zero` never ends), and files read whole
//! only up to a bound, so no input can hang numasim or exhaust its memory.
//! Streamed inputs (traces) are bounded by their file's size.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The largest file numasim reads whole (scenarios, fleets, capabilities,
/// fit cases, sysfs attributes): far above any real one.
pub const MAX_WHOLE_FILE_BYTES: u64 = 512 << 20;

/// Opens `path` for reading if it is a regular file (symlinks followed).
pub fn open(path: impl AsRef<Path>) -> io::Result<File> {
    let path = path.as_ref();
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}; expected a regular file"),
        ));
    }
    File::open(path)
}

/// Reads a regular file whole, refusing one above `MAX_WHOLE_FILE_BYTES`.
pub fn read_bytes(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path)?
        .take(MAX_WHOLE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_WHOLE_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("larger than {MAX_WHOLE_FILE_BYTES} bytes; expected a smaller file"),
        ));
    }
    Ok(bytes)
}

/// `read_bytes` as UTF-8 text.
pub fn read_text(path: impl AsRef<Path>) -> io::Result<String> {
    String::from_utf8(read_bytes(path)?).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line}: not valid UTF-8 (byte {at}); expected UTF-8 text"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let e = read_text(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let e = read_text(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let fifo = tmp.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let e = open(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let file = tmp.path().join("f");
        std::fs::write(&file, "text").unwrap();
        assert_eq!(read_text(&file).unwrap(), "text");
        std::fs::write(&file, b"name = 1\n\xff\xfe").unwrap();
        let e = read_text(&file).unwrap_err().to_string();
        assert!(e.contains("line 2: not valid UTF-8 (byte 9)"), "{e}");
    }
}
