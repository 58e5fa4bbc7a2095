//! Child processes a test starts, owned by a guard that kills and reaps them when it is dropped:
//! a test that fails or panics midway leaves no process behind.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wait;

/// This test binary, to be run again as a child process that runs only the ignored test `name`.
pub fn this_test(name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    command.stdin(Stdio::null());
    command
}

/// A node process: this test binary run again as the ignored test `test`, told the database
/// and its node name through `OBAN_CHILD_URL` and `OBAN_CHILD_NODE` (read them with
/// [`child_node_env`]); its stdin is a pipe whose closing tells it the parent is gone.
pub fn spawn_child_node(test: &str, url: &str, node: &str) -> ChildGuard {
    ChildGuard::spawn(
        node,
        this_test(test)
            .env("OBAN_CHILD_URL", url)
            .env("OBAN_CHILD_NODE", node)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// In a child node: the database URL and node name [`spawn_child_node`] passed, or `None` when
/// the test runs on its own (`cargo test -- --ignored`), which then has nothing to do.
pub fn child_node_env() -> Option<(String, String)> {
    Some((
        std::env::var("OBAN_CHILD_URL").ok()?,
        std::env::var("OBAN_CHILD_NODE").ok()?,
    ))
}

/// In a child node: returns once the parent test is gone (its end of our stdin closes, even if
/// it could not kill us), or after `limit`.
pub async fn until_parent_gone(limit: Duration) {
    let (gone, parent_gone) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = gone.send(());
    });
    let _ = tokio::time::timeout(limit, parent_gone).await;
}

/// A running child process, killed (SIGKILL) and reaped when dropped unless it was waited for.
///
/// Whatever of its stdout and stderr is piped is read as it comes (so the child never blocks on a
/// full pipe) and handed back by [`ChildGuard::wait_with_output`].
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl ChildGuard {
    /// Spawns `command` as the child called `name` (in messages).
    pub fn spawn(name: impl Into<String>, command: &mut Command) -> Self {
        let name = name.into();
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn child process {name}: {error}"));
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Self {
            name,
            child: Some(child),
            stdout,
            stderr,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the child's stdin (when piped): a child that reads it to its end learns that the
    /// parent is done with it.
    pub fn close_stdin(&mut self) {
        drop(self.child.as_mut().and_then(|child| child.stdin.take()));
    }

    /// Kills the child now (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("a live child");
        child
            .kill()
            .unwrap_or_else(|error| panic!("kill child process {}: {error}", self.name));
        child
            .wait()
            .unwrap_or_else(|error| panic!("reap child process {}: {error}", self.name));
    }

    /// Waits for the child to exit (polling, at most `limit`; on a timeout it is killed and the
    /// test fails), returning its status and what it wrote to its piped stdout and stderr.
    pub async fn wait_with_output(mut self, limit: Duration) -> Output {
        let name = self.name.clone();
        let status: ExitStatus = wait::poll(
            format!("child process {name} to exit"),
            limit,
            wait::POLL,
            async || match self.child.as_mut().expect("a live child").try_wait() {
                Ok(Some(status)) => Ok(status),
                Ok(None) => Err(String::new()),
                Err(error) => panic!("wait for child process {name}: {error}"),
            },
        )
        .await;
        self.child = None; // reaped by `try_wait`
        let collect = |reader: Option<JoinHandle<Vec<u8>>>| {
            reader.map_or_else(Vec::new, |reader| reader.join().expect("pipe reader"))
        };
        Output {
            status,
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
