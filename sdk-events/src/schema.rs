//! Action schemas: JSON Schema (the `jsonschema` crate), compiled once per action, with
//! formats checked (`"format": "email"` means an email) and **no remote `$ref`**: a
//! schema that refers outside itself is refused when the action is created, so a user's
//! schema can never make the bus fetch a URL or read a file.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sdk_base::sync::UnpoisonedRw as _;
use serde_json::Value;

/// A compiled schema.
pub type Compiled = Arc<jsonschema::Validator>;

/// Refuses every retrieval: no `$ref` leaves the schema.
struct NoRetrieval;

impl jsonschema::Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("`$ref` to {uri} refused: schemas may only refer within themselves").into())
    }
}

/// Compiles `schema`, or says why it is not a schema: not an object or boolean, a
/// keyword with a wrong value, or a `$ref` outside itself.
pub fn compile(schema: &Value) -> Result<Compiled, String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a schema is a JSON object (or true/false)".into());
    }
    jsonschema::meta::validate(schema)
        .map_err(|e| format!("not a valid JSON Schema: {e} (at `{}`)", e.instance_path()))?;
    jsonschema::options()
        .should_validate_formats(true)
        .with_retriever(NoRetrieval)
        .build(schema)
        .map(Arc::new)
        .map_err(|e| format!("not a usable JSON Schema: {e}"))
}

/// The first reasons `payload` does not match: `(path, keyword, message)`, at most five.
pub fn violations(schema: &jsonschema::Validator, payload: &Value) -> Vec<Violation> {
    schema
        .iter_errors(payload)
        .take(5)
        .map(|e| Violation {
            path: e.instance_path().to_string(),
            keyword: e.kind().keyword().to_owned(),
            message: e.to_string(),
        })
        .collect()
}

/// Why a payload does not match its action's schema.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Where in the payload, as a JSON Pointer (`/email`; empty for the whole payload).
    pub path: String,
    /// The schema keyword that failed (`required`, `format`, `enum`...).
    pub keyword: String,
    /// What the validator said.
    pub message: String,
}

/// Compiled schemas by action: each compiled once, on first use after a start.
#[derive(Debug, Default)]
pub struct Schemas {
    compiled: RwLock<HashMap<String, Compiled>>,
}

impl Schemas {
    /// The compiled schema of `action`, compiling `text` the first time.
    pub fn get_or_compile(&self, action: &str, text: &str) -> Result<Compiled, String> {
        if let Some(compiled) = self.compiled.read_locked().get(action) {
            return Ok(compiled.clone());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("stored schema unreadable: {e}"))?;
        let compiled = compile(&value)?;
        self.compiled
            .write_locked()
            .insert(action.to_owned(), compiled.clone());
        Ok(compiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_failing_path_and_keyword() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"email": {"type": "string", "format": "email"},
                           "plan": {"enum": ["free", "premium"]}},
            "required": ["user_id"]
        });
        let compiled = compile(&schema).expect("schema");
        let found = violations(
            &compiled,
            &serde_json::json!({"email": "not-an-email", "plan": "gold"}),
        );
        let pairs: Vec<_> = found
            .iter()
            .map(|v| (v.path.as_str(), v.keyword.as_str()))
            .collect();
        assert!(pairs.contains(&("/email", "format")), "{found:?}");
        assert!(pairs.contains(&("/plan", "enum")), "{found:?}");
        assert!(pairs.contains(&("", "required")), "{found:?}");
    }

    #[test]
    fn refuses_remote_refs_and_non_schemas() {
        let remote = serde_json::json!({"$ref": "http://127.0.0.1:9/schema.json"});
        assert!(compile(&remote).expect_err("remote").contains("refused"));
        assert!(compile(&serde_json::json!({"type": 12})).is_err());
        assert!(compile(&serde_json::json!([1])).is_err());
        let local = serde_json::json!({"$defs": {"id": {"type": "string"}},
                                       "properties": {"id": {"$ref": "#/$defs/id"}}});
        assert!(compile(&local).is_ok());
    }
}
