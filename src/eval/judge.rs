//! An optional LLM judge, like the paper's GPT-4 grading: each generated story is sent to an
//! OpenAI-compatible chat-completions endpoint with a fixed rubric, and the grammar,
//! creativity and consistency scores (1–10) it returns are averaged, with their spread.
//!
//! The key comes from an environment variable (none for a local server). A timeout, an HTTP
//! error or a reply without the three scores is an error naming the endpoint and the story.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::artifacts::records::{JudgeReport, Stat};

pub const RUBRIC: &str = "You grade short stories written for 3 to 5 year olds by a small language model. \
The story is given as a beginning (written by a person) and a continuation (written by the model); grade \
only the continuation, in the light of the beginning. Give three integer scores from 1 (worst) to 10 (best): \
grammar (spelling, syntax, punctuation), creativity (ideas, word choice, beyond the obvious), and \
consistency (the continuation keeps the characters, objects and plot of the beginning). \
Reply with one JSON object and nothing else: {\"grammar\": G, \"creativity\": C, \"consistency\": K}.";

#[derive(Debug, Clone)]
pub struct JudgeConfig {
    /// Base URL (`http://localhost:8080/v1`) or the full `.../chat/completions` URL.
    pub url: String,
    pub model: String,
    /// Bearer key, if the endpoint needs one.
    pub key: Option<String>,
    pub timeout: Duration,
}

impl JudgeConfig {
    fn endpoint(&self) -> String {
        let url = self.url.trim_end_matches('/');
        if url.ends_with("/chat/completions") {
            url.to_string()
        } else {
            format!("{url}/chat/completions")
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    pub grammar: f64,
    pub creativity: f64,
    pub consistency: f64,
}

/// Reads the three scores from the judge's reply text (the first `{...}` in it).
pub fn parse_scores(content: &str) -> Result<Scores> {
    let start = content.find('{');
    let end = content.rfind('}');
    let (Some(a), Some(b)) = (start, end) else {
        bail!("the reply holds no JSON object: {content:?}");
    };
    let v: serde_json::Value = serde_json::from_str(&content[a..=b])
        .with_context(|| format!("the reply's JSON does not parse: {:?}", &content[a..=b]))?;
    let get = |k: &str| -> Result<f64> {
        let x = v
            .get(k)
            .and_then(|x| x.as_f64())
            .ok_or_else(|| anyhow!("the reply has no number {k:?}: {content:?}"))?;
        if !(1.0..=10.0).contains(&x) {
            bail!("{k} = {x} is outside 1..=10");
        }
        Ok(x)
    };
    Ok(Scores {
        grammar: get("grammar")?,
        creativity: get("creativity")?,
        consistency: get("consistency")?,
    })
}

/// Grades one story.
pub fn grade(cfg: &JudgeConfig, beginning: &str, continuation: &str) -> Result<Scores> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(cfg.timeout))
        .build()
        .into();
    let body = json!({
        "model": cfg.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": RUBRIC},
            {"role": "user", "content": format!("Beginning:\n{beginning}\n\nContinuation:\n{continuation}")},
        ],
    });
    let endpoint = cfg.endpoint();
    let mut req = agent.post(&endpoint);
    if let Some(key) = &cfg.key {
        req = req.header("Authorization", format!("Bearer {key}"));
    }
    let reply: serde_json::Value = req
        .send_json(&body)
        .and_then(|r| r.into_body().read_json())
        .map_err(|e| anyhow!("{endpoint}: {e}"))?;
    let content = reply["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| anyhow!("{endpoint}: the reply has no choices[0].message.content"))?;
    parse_scores(content).with_context(|| format!("{endpoint}: unusable grade"))
}

fn stat(xs: &[f64]) -> Stat {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    Stat {
        mean,
        sd: var.sqrt(),
    }
}

/// Grades every (beginning, continuation) pair and averages.
pub fn judge(cfg: &JudgeConfig, stories: &[(String, String)]) -> Result<JudgeReport> {
    if stories.is_empty() {
        bail!("no stories to judge");
    }
    let mut all = Vec::new();
    for (i, (b, c)) in stories.iter().enumerate() {
        all.push(grade(cfg, b, c).with_context(|| format!("judging story {}", i + 1))?);
    }
    let pick = |f: fn(&Scores) -> f64| stat(&all.iter().map(f).collect::<Vec<_>>());
    Ok(JudgeReport {
        model: cfg.model.clone(),
        stories: all.len(),
        grammar: pick(|s| s.grammar),
        creativity: pick(|s| s.creativity),
        consistency: pick(|s| s.consistency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP server answering every request with `reply` (after `delay`);
    /// returns its base URL and the requests' bodies.
    fn server(
        reply: &'static str,
        delay: Duration,
        requests: usize,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut bodies = vec![];
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                bodies.push(String::from_utf8(body).unwrap());
                std::thread::sleep(delay);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
            bodies
        });
        (url, handle)
    }

    fn cfg(url: String, timeout_ms: u64) -> JudgeConfig {
        JudgeConfig {
            url,
            model: "test-judge".into(),
            key: Some("k".into()),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn scores_are_averaged_with_their_spread() {
        let reply = r#"{"choices":[{"message":{"role":"assistant","content":"Here: {\"grammar\": 8, \"creativity\": 5, \"consistency\": 6}"}}]}"#;
        let (url, handle) = server(reply, Duration::ZERO, 2);
        let stories = vec![
            (
                "Once, Lily had a kite.".to_string(),
                "She flew it.".to_string(),
            ),
            ("Tom lost his ball.".to_string(), "He found it.".to_string()),
        ];
        let r = judge(&cfg(url, 5000), &stories).unwrap();
        assert_eq!(r.stories, 2);
        assert_eq!(r.grammar, Stat { mean: 8.0, sd: 0.0 });
        assert_eq!(r.creativity.mean, 5.0);
        let bodies = handle.join().unwrap();
        let first: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(first["model"], "test-judge");
        assert_eq!(first["messages"][0]["content"], RUBRIC);
        assert!(
            first["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("She flew it.")
        );
    }

    #[test]
    fn a_bad_reply_is_an_error_not_a_crash() {
        let (url, _h) = server(
            r#"{"choices":[{"message":{"content":"I like it!"}}]}"#,
            Duration::ZERO,
            1,
        );
        let e = format!("{:#}", grade(&cfg(url, 5000), "a", "b").unwrap_err());
        assert!(e.contains("no JSON object"), "{e}");
        let (url, _h) = server(r#"{"error":"overloaded"}"#, Duration::ZERO, 1);
        let e = format!("{:#}", grade(&cfg(url, 5000), "a", "b").unwrap_err());
        assert!(e.contains("choices[0].message.content"), "{e}");
        assert!(parse_scores(r#"{"grammar": 11, "creativity": 5, "consistency": 5}"#).is_err());
    }

    #[test]
    fn a_slow_endpoint_times_out_with_an_error() {
        let (url, _h) = server("{}", Duration::from_millis(1500), 1);
        // The answer would come after 1.5 s and would not parse ("{}"): an error that is not
        // about the answer's content means the 200 ms limit cut the wait, with no wall time
        // measured here.
        let e = format!("{:#}", grade(&cfg(url.clone(), 200), "a", "b").unwrap_err());
        assert!(
            !e.contains("choices[0]") && !e.contains("no JSON object"),
            "{e}"
        );
        assert!(e.contains(&url), "{e}");
        // Nobody listening at all.
        let e = grade(&cfg("http://127.0.0.1:9/v1".into(), 500), "a", "b").unwrap_err();
        assert!(format!("{e:#}").contains("127.0.0.1:9"));
    }
}
