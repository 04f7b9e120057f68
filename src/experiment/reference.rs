//! The scenario reference: every key of a scenario file, walked from the
//! JSON Schema that `schemars` derives from the scenario types.

/// The JSON Schema of a scenario file, from the scenario types themselves.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(super::scenario::Scenario))
        .expect("a schema is JSON")
}

/// `numasim scenario reference`: every key of a scenario file as Markdown,
/// walked from the JSON Schema of the scenario types (their doc comments
/// are the descriptions), so it cannot drift from what the parser accepts.
pub fn reference_markdown() -> String {
    use serde_json::Value;
    let schema = schema();
    let defs = schema["$defs"].clone();
    let mut rows: Vec<[String; 5]> = Vec::new();
    // A `$ref` to its definition; an optional value (`anyOf` it or null)
    // to what it is when given.
    let resolve = |v: &Value| -> Value {
        let v = v["anyOf"]
            .as_array()
            .and_then(|alts| alts.iter().find(|a| a["type"] != "null"))
            .unwrap_or(v);
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => defs[r.trim_start_matches("#/$defs/")].clone(),
            None => v.clone(),
        }
    };
    fn kind(v: &Value) -> String {
        let t = match &v["type"] {
            Value::String(t) => t.clone(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect::<Vec<_>>()
                .join(" or "),
            _ => String::new(),
        };
        match (t.as_str(), v.get("format").and_then(Value::as_str)) {
            ("number", _) => "number".into(),
            ("integer", _) if v["minimum"].as_f64().is_some_and(|m| m >= 1.0) => {
                format!("integer ≥ {}", v["minimum"])
            }
            ("integer", Some(f)) if f.starts_with('u') => "integer ≥ 0".into(),
            ("", _) if v.get("oneOf").is_some() => "one of".into(),
            ("string", _) if v.get("enum").is_some() => "one of".into(),
            _ => t,
        }
    }
    fn allowed(v: &Value) -> String {
        if let Some(values) = v["enum"].as_array() {
            return values
                .iter()
                .map(|x| format!("`{}`", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ");
        }
        v["oneOf"]
            .as_array()
            .map(|alts| {
                alts.iter()
                    .filter_map(|a| {
                        a.get("const")
                            .map(|c| format!("`{}`", c.as_str().unwrap_or_default()))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }
    fn text(v: &Value) -> String {
        v.get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|")
    }
    fn walk(
        path: &str,
        node: &Value,
        required: bool,
        resolve: &dyn Fn(&Value) -> Value,
        rows: &mut Vec<[String; 5]>,
    ) {
        let own = node.clone();
        let target = resolve(node);
        let items = target.get("items").map(resolve);
        let default = own
            .get("default")
            .map(|d| format!("`{d}`"))
            .unwrap_or_else(|| {
                if path.ends_with("[]") || path.ends_with("<name>") {
                    String::new()
                } else if required {
                    "required".into()
                } else {
                    "optional".into()
                }
            });
        let (a, b) = (text(&own), text(&target));
        let description = if b.is_empty() || a == b {
            a
        } else if a.is_empty() {
            b
        } else {
            format!("{a} {b}")
        };
        let mut allowed_values = allowed(&target);
        if let Some(variants) = target["oneOf"].as_array()
            && variants.iter().any(|v| v.get("properties").is_some())
        {
            // A tagged choice (lifetime): each variant's keys.
            rows.push([
                path.into(),
                "table".into(),
                default,
                String::new(),
                description,
            ]);
            for v in variants {
                let tag = v["properties"]
                    .as_object()
                    .and_then(|p| {
                        p.iter()
                            .find_map(|(k, x)| x.get("const").map(|c| format!("{k} = {c}")))
                    })
                    .unwrap_or_default();
                let req: Vec<&str> = v["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (k, x) in v["properties"].as_object().into_iter().flatten() {
                    if x.get("const").is_none() {
                        walk(
                            &format!("{path}.{k} (with {tag})"),
                            x,
                            req.contains(&k.as_str()),
                            resolve,
                            rows,
                        );
                    }
                }
            }
            return;
        }
        if let Some(props) = target["properties"].as_object() {
            let t = if path.is_empty() {
                String::new()
            } else {
                "table".into()
            };
            if !path.is_empty() {
                rows.push([path.into(), t, default, String::new(), description]);
            }
            let req: Vec<&str> = target["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (k, x) in props {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&sub, x, req.contains(&k.as_str()), resolve, rows);
            }
            return;
        }
        if let Some(entry) = target
            .get("additionalProperties")
            .filter(|a| a.is_object())
            .map(resolve)
            .filter(|e| e.get("properties").is_some())
        {
            rows.push([
                path.into(),
                "table of name → table".into(),
                default,
                String::new(),
                description,
            ]);
            walk(&format!("{path}.<name>"), &entry, true, resolve, rows);
            return;
        }
        if let Some(item) = items.filter(|i| i.get("properties").is_some()) {
            rows.push([
                path.into(),
                "list of tables".into(),
                default,
                String::new(),
                description,
            ]);
            walk(&format!("{path}[]"), &item, true, resolve, rows);
            return;
        }
        let mut k = kind(&target);
        if let Some(map) = target.get("additionalProperties").filter(|a| a.is_object()) {
            k = format!("table of name → {}", kind(&resolve(map)));
        } else if let Some(i) = target.get("items") {
            k = format!("list of {}", kind(&resolve(i)));
        }
        if allowed_values.is_empty() && k == "one of" {
            allowed_values = "see description".into();
        }
        rows.push([path.into(), k, default, allowed_values, description]);
    }
    walk("", &schema, true, &resolve, &mut rows);
    let mut out = String::from(
        "# Scenario reference\n\nEvery key of a scenario file, generated from the scenario types by\n`numasim scenario reference` (a test keeps this file equal to its output).\n`numasim scenario init` prints a commented example that runs as it is;\n`numasim scenario check FILE` validates one without running it. Keys\nnot listed are refused, with their line.\n\n| key | type | default | allowed values | description |\n|---|---|---|---|---|\n",
    );
    for [key, kind, default, allowed, text] in rows {
        out.push_str(&format!(
            "| `{key}` | {kind} | {default} | {allowed} | {text} |\n"
        ));
    }
    out
}
