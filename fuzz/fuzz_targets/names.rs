//! The parsers of client-chosen names: item paths, namespace prefixes, cursors, thread ids,
//! tool names, titles and roles. Nothing may panic, and what parses survives a round trip
//! through its printed form unchanged (so a name cannot mean two things).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom::rooms::{ItemCursor, MessageRole, NamespacePrefix, ThreadId, Title, ToolName, parse_item_path};

fuzz_target!(|text: &str| {
    if let Ok((namespace, key)) = parse_item_path(text) {
        let printed = format!("{namespace}/{}", key.as_str());
        assert_eq!(printed, text, "an item path prints as it was given");
        let (again, again_key) = parse_item_path(&printed).expect("a printed path parses");
        assert_eq!((again.segments(), again_key.as_str()), (namespace.segments(), key.as_str()));
    }
    if let Ok(prefix) = NamespacePrefix::parse_path(text) {
        let printed = prefix.segments().join("/");
        let again = NamespacePrefix::parse_path(&printed).expect("a printed prefix parses");
        assert_eq!(again.segments(), prefix.segments());
    }
    if let Ok(cursor) = ItemCursor::parse(text) {
        let again = ItemCursor::parse(&cursor.encode()).expect("an encoded cursor parses");
        assert_eq!(again.encode(), cursor.encode());
    }
    if let Ok(thread) = ThreadId::parse(text) {
        assert_eq!(ThreadId::parse(&thread.to_string()).expect("a printed id parses"), thread);
    }
    if let Ok(tool) = ToolName::parse(text) {
        assert_eq!(tool.as_str(), text);
    }
    if let Ok(title) = Title::parse(text) {
        assert_eq!(Title::parse(title.as_str()).expect("a title parses again").as_str(), title.as_str());
    }
    if let Ok(role) = MessageRole::parse(text) {
        assert_eq!(role.as_str(), text);
    }
});
