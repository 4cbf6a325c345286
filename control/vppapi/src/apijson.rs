//! `<module>.api.json` emission in VPP's JSON API format (what vpp_papi loads from its
//! apidir), generated from the Rust definitions.

use crate::defs::MODULES;
use crate::schema::{FieldDef, ModuleDef, Shape, TypeBody, TypeDef};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

fn opts(s: &str) -> Option<Value> {
    if s.is_empty() {
        return None;
    }
    serde_json::from_str(s).ok()
}

fn field_json(f: &FieldDef) -> Value {
    let mut v = vec![json!(f.ty), json!(f.name)];
    match f.shape {
        Shape::Scalar => {
            if let Some(o) = opts(f.options) {
                v.push(o);
            }
        }
        Shape::Fixed(n) => v.push(json!(n)),
        Shape::Vla(l) => {
            v.push(json!(0));
            v.push(json!(l));
        }
    }
    Value::Array(v)
}

fn collect(fields: &[FieldDef], out: &mut Vec<&'static TypeDef>) {
    for f in fields {
        if let Some(t) = f.typedef {
            collect_type(t, out);
        }
    }
}

fn collect_type(t: &'static TypeDef, out: &mut Vec<&'static TypeDef>) {
    if out.iter().any(|x| x.name == t.name) {
        return;
    }
    match t.body {
        TypeBody::Struct(f) | TypeBody::Union(f) => collect(f, out),
        TypeBody::Alias {
            target: Some(tt), ..
        } => collect_type(tt, out),
        _ => {}
    }
    out.push(t);
}

/// The JSON document of one module.
pub fn module_json(m: &ModuleDef) -> Value {
    let mut types_used = Vec::new();
    for d in m.messages {
        collect(d.fields, &mut types_used);
    }
    let (mut types, mut unions, mut enums, mut enumflags) = (vec![], vec![], vec![], vec![]);
    let mut aliases = Map::new();
    for t in &types_used {
        match t.body {
            TypeBody::Struct(f) | TypeBody::Union(f) => {
                let mut v = vec![json!(t.name)];
                v.extend(f.iter().map(field_json));
                if matches!(t.body, TypeBody::Struct(_)) {
                    types.push(Value::Array(v));
                } else {
                    unions.push(Value::Array(v));
                }
            }
            TypeBody::Enum {
                flags,
                base,
                values,
            } => {
                let mut v = vec![json!(t.name)];
                v.extend(values.iter().map(|e| json!([e.name, e.value])));
                v.push(json!({ "enumtype": base }));
                if flags {
                    enumflags.push(Value::Array(v));
                } else {
                    enums.push(Value::Array(v));
                }
            }
            TypeBody::Alias { ty, length, .. } => {
                let mut a = Map::new();
                a.insert("type".into(), json!(ty));
                if let Some(n) = length {
                    a.insert("length".into(), json!(n));
                }
                aliases.insert(t.name.to_string(), Value::Object(a));
            }
        }
    }
    let messages: Vec<Value> = m
        .messages
        .iter()
        .map(|d| {
            let mut v = vec![json!(d.name), json!(["u16", "_vl_msg_id"])];
            v.extend(d.fields.iter().map(field_json));
            v.push(json!({
                "crc": format!("{:#010x}", d.compute_crc()),
                "options": opts(d.options).unwrap_or_else(|| json!({})),
            }));
            Value::Array(v)
        })
        .collect();
    let mut services = Map::new();
    for s in m.services {
        let mut o = Map::new();
        o.insert("reply".into(), json!(s.reply));
        if s.stream {
            o.insert("stream".into(), json!(true));
        }
        if let Some(sm) = s.stream_msg {
            o.insert("stream_msg".into(), json!(sm));
        }
        if !s.events.is_empty() {
            o.insert("events".into(), json!(s.events));
        }
        services.insert(s.caller.to_string(), Value::Object(o));
    }
    json!({
        "module": m.name,
        "types": types,
        "messages": messages,
        "unions": unions,
        "enums": enums,
        "enumflags": enumflags,
        "services": services,
        "options": opts(m.options).unwrap_or_else(|| json!({})),
        "aliases": aliases,
        "vl_api_version": format!("{:#x}", m.vl_api_version),
        "imports": [],
        "counters": [],
        "paths": [],
    })
}

/// Write `<module>.api.json` for every carried module into `dir` (created if needed).
pub fn write_api_json_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for m in MODULES {
        let p = dir.join(format!("{}.api.json", m.name));
        let text = serde_json::to_string_pretty(&module_json(m)).map_err(std::io::Error::other)?;
        std::fs::write(&p, text)?;
        out.push(p);
    }
    Ok(out)
}
