//! `icsctl load FILE`: a scenario file posted in one client-streaming bulk call.
//!
//! Each non-blank line that does not start with `#` is an icsctl subcommand (without the
//! `icsctl`). The whole file is parsed before anything is sent, so a typo on line 300 stops the
//! load before line 1 is posted. Request ids are derived from the file name, the line number and
//! the line's text (UUID v5), so loading the same file again is a no-op: every command comes back
//! as a duplicate and nothing is written twice.

use std::path::Path;

use anyhow::Context;
use api::pb;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Global;
use crate::post::Post;

/// One line of a scenario file.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Line {
    #[command(subcommand)]
    post: Post,
}

/// Namespace of the request ids of scenario lines.
const SCENARIO_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f0c_3c1e_5a7b_4d2e_9b1f_2c8d_4e6a_7b90);

/// Parses a scenario into protobuf commands with their line numbers.
pub fn parse_scenario(name: &str, text: &str) -> anyhow::Result<Vec<(usize, pb::Command)>> {
    let mut commands = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words =
            shlex::split(line).with_context(|| format!("{name}:{number}: unbalanced quotes"))?;
        let parsed = Line::try_parse_from(words)
            .map_err(|e| anyhow::anyhow!("{name}:{number}: {}", e.render()))?;
        let command = parsed
            .post
            .command()
            .map_err(|e| anyhow::anyhow!("{name}:{number}: {e}"))?;
        let request_id = uuid::Uuid::new_v5(
            &SCENARIO_NAMESPACE,
            format!("{name}\n{number}\n{line}").as_bytes(),
        );
        let meta = api::CommandMeta::new(*request_id.as_bytes());
        commands.push((number, api::command_to_proto(&meta, &command)));
    }
    Ok(commands)
}

pub async fn load(global: &Global, file: &Path, quiet: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let commands = parse_scenario(&name, &text)?;
    let lines: Vec<usize> = commands.iter().map(|(line, _)| *line).collect();
    let bar = if quiet || global.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(commands.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} commands {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut client = crate::connect(global).await?;
    let progress = bar.clone();
    let outgoing = futures::stream::iter(commands.into_iter().map(move |(_, command)| {
        progress.inc(1);
        command
    }));
    let result = client.submit_bulk(crate::request(global, outgoing)?).await;
    bar.finish_and_clear();
    let reply = match result {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            // The server names the failing command by its index in the call; name the line.
            let line = status
                .message()
                .strip_prefix("command ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|index| index.parse::<usize>().ok())
                .and_then(|index| lines.get(index));
            let at = line.map_or_else(String::new, |line| format!("{name}:{line}: "));
            return Err(anyhow::anyhow!(
                "{at}{}",
                crate::output::status_error(status)
            ));
        }
    };
    crate::output::bulk_reply(global, &name, &reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_scenarios_parse() {
        for file in ["kingsmere-2018-19.ics", "kingsmere-variant-b.ics"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/demo")
                .join(file);
            let text = std::fs::read_to_string(&path).expect("demo scenario");
            let commands = parse_scenario(file, &text).expect("parses");
            assert!(commands.len() > 300, "{file}: {} commands", commands.len());
        }
    }

    #[test]
    fn request_ids_are_stable_and_distinct() {
        let text = "close-period --period 2018/19-M1\nclose-period --period 2018/19-M2\n";
        let ids = |text| -> Vec<String> {
            parse_scenario("s.ics", text)
                .expect("parses")
                .into_iter()
                .map(|(_, c)| match c.command {
                    Some(pb::command::Command::ClosePeriod(r)) => {
                        r.meta.map(|m| m.request_id).unwrap_or_default()
                    }
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        let first = ids(text);
        assert_eq!(first, ids(text));
        assert_ne!(first[0], first[1]);
    }

    #[test]
    fn errors_name_the_line() {
        let error = parse_scenario("s.ics", "# comment\n\nclose-period --period 2018/19-M13\n")
            .expect_err("bad month");
        assert!(error.to_string().starts_with("s.ics:3:"), "{error}");
        let error = parse_scenario(
            "s.ics",
            "raise-invoice --contract C1 --invoice I --period 2018/19-M1 --amount 1.234",
        )
        .expect_err("bad amount");
        assert!(
            error.to_string().contains("more than two decimal places"),
            "{error}"
        );
    }
}
