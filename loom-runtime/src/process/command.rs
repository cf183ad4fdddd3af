//! [`Command`]: std's process builder, spawning children whose waits and
//! pipes park only the calling fiber.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use super::child::Child;
use crate::rt::current::with_current;

/// A process builder with [`std::process::Command`]'s methods; its
/// [`spawn`](Command::spawn), [`output`](Command::output) and
/// [`status`](Command::status) return a loom [`Child`] or wait on the
/// calling fiber only.
///
/// Spawning is std's own `spawn`, run on the blocking pool: it returns as
/// soon as the new program has started, or with std's error if it could
/// not (a missing program is `NotFound`).
///
/// The child starts with no signal blocked and the default action for
/// any signal loom set to be ignored, whatever the spawning thread's mask
/// (loom's threads block the signals `loom::signal` may take over, and a
/// blocked mask would otherwise survive `exec`). While a `Signals` is
/// alive that takes a `pre_exec` hook, so std then forks rather than
/// using `posix_spawn`.
///
/// Unix settings std has in `CommandExt` (`uid`, `process_group`,
/// `pre_exec`, ...) are reached through [`as_std_mut`](Command::as_std_mut).
///
/// # Examples
///
/// ```
/// use loom::process::Command;
///
/// loom::Runtime::builder().build()?.run(|| -> std::io::Result<()> {
///     let output = Command::new("echo").args(["hello", "world"]).output()?;
///     assert_eq!(output.stdout, b"hello world\n");
///     assert!(output.status.success());
///     Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    inner: std::process::Command,
    /// Which streams were configured explicitly: `output` gives the rest
    /// its own defaults (stdin null, stdout and stderr piped).
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
    /// `reset_for_exec` is installed as a `pre_exec` hook (see `spawn_std`).
    resets_signals: bool,
}

impl Command {
    /// A command running `program` (looked up in `PATH` unless it is a
    /// path), with no arguments, this process's environment and working
    /// directory, and stdio inherited by `spawn` and `status`.
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command {
            inner: std::process::Command::new(program),
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
            resets_signals: false,
        }
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K, V>(&mut self, key: K, value: V) -> &mut Command
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.env(key, value);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what
    /// [`env`](Command::env) adds afterwards).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets the child's standard input: [`Stdio::piped`] (then written
    /// through [`Child::stdin`]), [`Stdio::null`], [`Stdio::inherit`], or
    /// anything std converts into a [`Stdio`] (a `File`, an `OwnedFd`).
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's standard output (see [`stdin`](Command::stdin)).
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the child's standard error (see [`stdin`](Command::stdin)).
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// The program to run, as given to [`new`](Command::new).
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// The arguments, without the program.
    pub fn get_args(&self) -> std::process::CommandArgs<'_> {
        self.inner.get_args()
    }

    /// The environment changes made with `env`, `envs` and `env_remove`
    /// (`None` for a removal).
    pub fn get_envs(&self) -> std::process::CommandEnvs<'_> {
        self.inner.get_envs()
    }

    /// The working directory set with [`current_dir`](Command::current_dir).
    pub fn get_current_dir(&self) -> Option<&Path> {
        self.inner.get_current_dir()
    }

    /// The std command inside.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The std command inside, for settings std keeps in platform traits
    /// (`std::os::unix::process::CommandExt`). Set stdio with this type's
    /// own methods: [`output`](Command::output) only knows about those.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child; stdio not configured is inherited.
    ///
    /// std's spawn runs on the blocking pool (see the
    /// [module documentation](super#spawning)): the calling fiber waits
    /// until the new program has started, or could not be.
    ///
    /// # Errors
    ///
    /// std's spawn error (`NotFound` for a missing program,
    /// `PermissionDenied` for one that cannot be executed, ...); on Linux,
    /// `pidfd_open`'s (the child is then killed and reaped); the
    /// cancellation error if the fiber is cancelled before the spawn
    /// started (once it has, the child is returned).
    ///
    /// # Panics
    ///
    /// Outside a fiber.
    #[track_caller]
    pub fn spawn(&mut self) -> io::Result<Child> {
        Child::adopt(self.spawn_std("loom::process::Command::spawn")?)
    }

    /// std's spawn, on the blocking pool.
    #[track_caller]
    ///
    /// The child inherits the spawning thread's signal mask, and a pool
    /// thread blocks every catchable signal; so the spawn runs with the
    /// mask narrowed to the signals a `loom::signal::Signals` has taken,
    /// which must stay blocked everywhere lest this thread take one. If
    /// there are any (or loom set a signal to `SIG_IGN`, on kqueue
    /// platforms), a `pre_exec` hook clears them in the child — which
    /// makes std fork rather than use `posix_spawn`, so only programs that
    /// take signals pay for it.
    fn spawn_std(&mut self, what: &str) -> io::Result<std::process::Child> {
        let keep_blocked = crate::signal::taken();
        if (!keep_blocked.is_empty() || crate::sys::signal::loom_ignored_any())
            && !self.resets_signals
        {
            // SAFETY: the hook runs in the child between fork and exec and
            // makes only async-signal-safe calls (`reset_for_exec`).
            unsafe { self.inner.pre_exec(crate::sys::signal::reset_for_exec) };
            self.resets_signals = true;
        }
        let inner = &mut self.inner;
        let spawn = || crate::sys::signal::with_thread_mask(keep_blocked, || inner.spawn());
        match with_current(what, |lp| crate::blocking::run(lp, spawn))? {
            Ok(spawned) => spawned,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs the child to completion and collects its stdout and stderr.
    /// Unless configured otherwise, stdin is null and stdout and stderr
    /// are piped (std's defaults for `output`); both are read at once, as
    /// [`Child::wait_with_output`] does.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Command::spawn) and
    /// [`Child::wait_with_output`]. A fiber already cancelled gets the
    /// cancellation error before anything is spawned; one cancelled while
    /// waiting gets it too, and leaves the child running, un-reaped (see
    /// [`Child`] on dropping).
    ///
    /// # Panics
    ///
    /// Outside a fiber.
    #[track_caller]
    pub fn output(&mut self) -> io::Result<Output> {
        let (stdin, stdout, stderr) = (!self.stdin_set, !self.stdout_set, !self.stderr_set);
        if stdin {
            self.inner.stdin(Stdio::null());
        }
        if stdout {
            self.inner.stdout(Stdio::piped());
        }
        if stderr {
            self.inner.stderr(Stdio::piped());
        }
        let spawned = self.spawn_std("loom::process::Command::output");
        // std keeps no "unset": inherited is what `spawn` and `status`
        // would use for a stream nobody configured.
        if stdin {
            self.inner.stdin(Stdio::inherit());
        }
        if stdout {
            self.inner.stdout(Stdio::inherit());
        }
        if stderr {
            self.inner.stderr(Stdio::inherit());
        }
        Child::adopt(spawned?)?.wait_with_output()
    }

    /// Runs the child to completion (stdio inherited unless configured)
    /// and returns its exit status.
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Command::spawn) and [`Child::wait`]. As with
    /// [`output`](Command::output), cancellation spawns nothing, or leaves
    /// the child running, un-reaped.
    ///
    /// # Panics
    ///
    /// Outside a fiber.
    #[track_caller]
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        Child::adopt(self.spawn_std("loom::process::Command::status")?)?.wait()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
