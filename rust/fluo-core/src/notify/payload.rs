//! Message bodies: Slack-compatible incoming-webhook JSON (`text` as the fallback plus Block
//! Kit `blocks`) and a generic JSON object for other receivers.

use serde_json::{Value, json};

use super::event::Event;
use crate::config::PayloadFormat;

pub fn body(format: PayloadFormat, event: &Event) -> Value {
    match format {
        PayloadFormat::Slack => slack(event),
        PayloadFormat::Json => generic(event),
    }
}

/// https://api.slack.com/messaging/webhooks: `text` is shown in notifications and by clients
/// without blocks; the blocks carry a header, the details as fields and the next step.
pub fn slack(event: &Event) -> Value {
    let header = format!(
        "{}{}: {}",
        if event.emergency { "EMERGENCY " } else { "" },
        event.environment,
        event.summary
    );
    let fields: Vec<Value> = event
        .fields()
        .into_iter()
        .filter(|(label, _)| *label != "Next")
        .map(|(label, value)| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(&value))}))
        .collect();
    let mut blocks = vec![json!({
        "type": "header",
        // Slack caps header text at 150 characters.
        "text": {"type": "plain_text", "text": truncate(&header, 150)},
    })];
    // Slack allows at most 10 fields per section.
    for chunk in fields.chunks(10) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    if !event.next.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Next*\n{}", escape(&event.next))},
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("fluo {} at {}", event.kind, event.at.format("%Y-%m-%d %H:%M:%SZ"))}],
    }));
    json!({"text": event.text(), "blocks": blocks})
}

/// The event's fields as one object, plus `text`.
pub fn generic(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or_else(|_| json!({}));
    value["text"] = json!(event.text());
    value
}

/// Slack mrkdwn control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventKind;

    fn event() -> Event {
        let mut e = Event::new(EventKind::DeployFailed, "staging", "deploy d1 failed");
        e.result = "failed, rolled back to v2".into();
        e.next = "fluo-deploy --env staging history bff".into();
        e.who = "alice".into();
        e
    }

    #[test]
    fn slack_payload_has_text_header_fields_and_next() {
        let p = slack(&event());
        assert!(
            p["text"]
                .as_str()
                .unwrap()
                .starts_with("[staging] deploy d1 failed")
        );
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "staging: deploy d1 failed");
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["text"] == "*Result*\nfailed, rolled back to v2")
        );
        assert!(fields.iter().any(|f| f["text"] == "*Who*\nalice"));
        assert_eq!(
            blocks[2]["text"]["text"],
            "*Next*\nfluo-deploy --env staging history bff"
        );
        assert_eq!(blocks[3]["type"], "context");
    }

    #[test]
    fn slack_escapes_markup_and_caps_the_header() {
        let mut e = event();
        e.reason = Some("a <b> & c".into());
        e.summary = "x".repeat(200);
        let p = slack(&e);
        assert_eq!(
            p["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            150
        );
        let fields = p["blocks"][1]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["text"] == "*Reason*\na &lt;b&gt; &amp; c")
        );
    }

    #[test]
    fn generic_payload_is_the_event_plus_text() {
        let p = generic(&event());
        assert_eq!(p["event"], "deploy-failed");
        assert_eq!(p["environment"], "staging");
        assert_eq!(p["result"], "failed, rolled back to v2");
        assert_eq!(p["emergency"], false);
        assert!(
            p["text"]
                .as_str()
                .unwrap()
                .contains("Result: failed, rolled back to v2")
        );
    }
}
