use std::path::{Path, PathBuf};

/// A fresh directory under the system temp dir, removed with everything in it on drop.
/// Named with a random id, so parallel tests and runs never share one.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "redauth-embedded-test-{}",
            redauth_core::ids::random_id().unwrap()
        ));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
