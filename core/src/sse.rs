//! A minimal `text/event-stream` parser (the WHATWG rules the protocol needs).
//!
//! Bytes go in as they arrive, in chunks split anywhere (even inside a UTF-8 character);
//! complete events come out. Comment lines (`:` keep-alives) produce [`SseItem::Comment`] so
//! the caller can reset its idle timer on them.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    Comment,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds a chunk; returns the items it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            self.line(&line, &mut out);
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseItem::Event(SseEvent {
                    event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                    data,
                    id: self.id.clone(),
                }));
            }
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            out.push(SseItem::Comment);
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut p = SseParser::new();
        let input = "event: status\ndata: {\"a\":\ndata: 1}\n\n: keep-alive\n\nevent: chatbox\r\ndata: é\r\n\r\n";
        let bytes = input.as_bytes();
        let mut items = Vec::new();
        for chunk in bytes.chunks(3) {
            items.extend(p.push(chunk));
        }
        assert_eq!(
            items,
            vec![
                SseItem::Event(SseEvent {
                    event: "status".into(),
                    data: "{\"a\":\n1}".into(),
                    id: None
                }),
                SseItem::Comment,
                SseItem::Event(SseEvent {
                    event: "chatbox".into(),
                    data: "é".into(),
                    id: None
                }),
            ]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: x\n\n").is_empty());
        let items = p.push(b"data: y\n\n");
        assert_eq!(
            items,
            vec![SseItem::Event(SseEvent {
                event: "message".into(),
                data: "y".into(),
                id: None
            })]
        );
    }
}
