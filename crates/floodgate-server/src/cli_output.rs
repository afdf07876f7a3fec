//! What the command line prints: output written so that a closed pipe
//! (`floodgate check-config big.toml | head -2`) ends the command quietly,
//! and the shell completions and man page generated from the CLI definition.

use std::io::{self, Write};
use std::process::ExitCode;

/// A shell `floodgate completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash (`source <(floodgate completions bash)`).
    Bash,
    /// zsh (save as `_floodgate` on `$fpath`).
    Zsh,
    /// fish (save as `~/.config/fish/completions/floodgate.fish`).
    Fish,
}

impl From<Shell> for clap_complete::Shell {
    fn from(shell: Shell) -> Self {
        match shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// Writes `bytes` to `out` and flushes it. A reader that went away (a broken
/// pipe: `| head`) is not an error: the command has nothing more to say.
///
/// # Errors
/// Any other write error.
pub fn write_all_quietly(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints `bytes` on the locked standard output; success, also when the
/// reader closed the pipe early. Any other write error is reported on
/// stderr and fails the command.
pub fn print(bytes: &[u8]) -> ExitCode {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match write_all_quietly(&mut out, bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("floodgate: cannot write the output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The completion script for `shell` of the command `command`.
pub fn completions(shell: Shell, command: &mut clap::Command) -> Vec<u8> {
    let name = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        command,
        name,
        &mut script,
    );
    script
}

/// The man page (roff, section 1) of the command `command`: its name,
/// synopsis, description and options, then a COMMANDS section with each
/// subcommand's synopsis, description and options (one page, no
/// `floodgate-serve(1)` pages to look for).
///
/// # Errors
/// Never in practice: rendering writes into memory.
pub fn man_page(command: clap::Command) -> io::Result<Vec<u8>> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let top = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;
    page.extend_from_slice(b".SH COMMANDS\n");
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
        let man = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        man.render_synopsis_section(&mut section)?;
        man.render_description_section(&mut section)?;
        if sub.get_arguments().any(|arg| !arg.is_hide_set()) {
            man.render_options_section(&mut section)?;
        }
        page.extend_from_slice(as_subsection(&String::from_utf8_lossy(&section), name).as_bytes());
    }
    Ok(page)
}

/// A subcommand's own sections turned into one subsection of the COMMANDS
/// section: `.SH SYNOPSIS` becomes `.SS "floodgate serve"`, the other
/// headings paragraph breaks.
fn as_subsection(sections: &str, name: &str) -> String {
    let mut out = String::with_capacity(sections.len() + 32);
    for line in sections.lines() {
        match line {
            ".SH SYNOPSIS" => {
                out.push_str(&format!(".SS \"{}\"\n", name.replace('-', "\\-")));
            }
            ".SH OPTIONS" => out.push_str(".PP\nOptions:\n"),
            _ if line.starts_with(".SH ") => out.push_str(".PP\n"),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    /// A writer that fails for another reason.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_not_an_error_but_other_failures_are() {
        assert!(write_all_quietly(&mut ClosedPipe, b"policy p\n").is_ok());
        assert!(write_all_quietly(&mut Full, b"policy p\n").is_err());
        let mut out = Vec::new();
        write_all_quietly(&mut out, b"policy p\n").unwrap();
        assert_eq!(out, b"policy p\n");
    }

    fn command() -> clap::Command {
        clap::Command::new("floodgate")
            .about("a sidecar")
            .subcommand(clap::Command::new("serve").about("run it"))
            .subcommand(clap::Command::new("check-config").about("check a file"))
    }

    #[test]
    fn completions_and_the_man_page_name_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell, &mut command())).unwrap();
            for name in ["serve", "check-config"] {
                assert!(script.contains(name), "{shell:?}: {script}");
            }
        }
        let page = String::from_utf8(man_page(command()).unwrap()).unwrap();
        assert!(page.contains(".TH floodgate 1"), "{page}");
        assert!(page.contains(".SS \"floodgate check\\-config\""), "{page}");
        assert!(page.contains(".SS \"floodgate serve\""), "{page}");
        assert_eq!(page.matches(".SH SYNOPSIS").count(), 1, "{page}");
        assert!(!page.contains("floodgate\\-serve(1)"), "{page}");
    }
}
