//! Parameter declarations, read from the playbook's `params()` array.

use super::{ParamError, ParamValue, RESERVED, RESERVED_FOR_LATER, kebab};
use crate::duration;
use crate::suggest::suggest;
use rhai::{Dynamic, Map};
use std::collections::BTreeSet;

/// A parameter's type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ParamType {
    /// Any text.
    String,
    /// A whole number.
    Int,
    /// A flag: `--x`, `--no-x`, `--x=true|false`.
    Bool,
    /// `90s`, `5m`, `1h30m`, or seconds.
    Duration,
    /// A list of strings: comma-separated and/or repeated.
    List,
    /// A list of integers: comma-separated and/or repeated.
    IntList,
    /// One of a fixed set of strings.
    Enum(Vec<String>),
}

impl ParamType {
    /// The placeholder in help: `--num-parties <INT>`.
    pub(crate) fn metavar(&self) -> String {
        match self {
            Self::String => "STRING".into(),
            Self::Int => "INT".into(),
            Self::Bool => String::new(),
            Self::Duration => "DURATION".into(),
            Self::List => "A,B,..".into(),
            Self::IntList => "N,N,..".into(),
            Self::Enum(v) => v.join("|"),
        }
    }

    /// How the type reads in help and errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::String => "string".into(),
            Self::Int => "integer".into(),
            Self::Bool => "flag".into(),
            Self::Duration => "duration".into(),
            Self::List => "list".into(),
            Self::IntList => "list of integers".into(),
            Self::Enum(v) => format!("one of {}", v.join(", ")),
        }
    }
}

/// A declared parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamSpec {
    /// snake_case name; scripts read `param::<name>`.
    pub name: String,
    /// Type.
    pub ty: ParamType,
    /// Default value.
    pub default: Option<ParamValue>,
    /// Must be given (a default makes this moot).
    pub required: bool,
    /// One-line description.
    pub doc: String,
    /// Extra environment variables read after `KMSCTL_<NAME>` (for the bash toolkit's names).
    pub env: Vec<String>,
    /// The value is a secret: masked in every output.
    pub secret: bool,
    /// Extra flag names (kebab-case, without `--`).
    pub aliases: Vec<String>,
    /// Flags that set a bool parameter to false (e.g. `disable-tls`).
    pub off_aliases: Vec<String>,
    /// Inclusive bounds for integers.
    pub min: Option<i64>,
    /// Inclusive upper bound for integers.
    pub max: Option<i64>,
}

impl ParamSpec {
    /// The main flag, `--num-parties`.
    pub(crate) fn flag(&self) -> String {
        format!("--{}", kebab(&self.name))
    }

    /// The environment variable kmsctl reads for it: `KMSCTL_NUM_PARTIES`.
    pub(crate) fn env_var(&self) -> String {
        format!("KMSCTL_{}", self.name.to_ascii_uppercase())
    }

    /// Every flag name (without `--`) that sets this parameter.
    pub(crate) fn flag_names(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(kebab(&self.name)).chain(self.aliases.iter().cloned())
    }

    /// Parse a value written as text (command line, environment, `--set`).
    pub(crate) fn parse_text(&self, text: &str) -> Result<ParamValue, String> {
        let v = match &self.ty {
            ParamType::String => ParamValue::String(text.to_string()),
            ParamType::Int => ParamValue::Int(
                text.trim().parse().map_err(|_| format!("{} wants an integer, got '{text}'", self.flag()))?,
            ),
            ParamType::Bool => ParamValue::Bool(parse_bool(text).ok_or_else(|| {
                format!("{} is a flag: give it alone, or as {}=true|false; got '{text}'", self.flag(), self.flag())
            })?),
            ParamType::Duration => {
                let d = duration::parse(text)
                    .map_err(|_| format!("{} wants a duration like 90s, 5m or 1h30m, got '{text}'", self.flag()))?;
                ParamValue::Duration(d, text.trim().to_string())
            }
            ParamType::List => ParamValue::List(split_list(text)),
            ParamType::IntList => ParamValue::IntList(
                split_list(text)
                    .iter()
                    .map(|s| s.parse().map_err(|_| format!("{} wants integers, got '{s}'", self.flag())))
                    .collect::<Result<_, _>>()?,
            ),
            ParamType::Enum(allowed) => {
                if !allowed.iter().any(|a| a == text) {
                    let mut msg = format!("{} must be one of: {}; got '{text}'", self.flag(), allowed.join(", "));
                    if let Some(s) = suggest(text, allowed.iter().map(String::as_str)) {
                        msg.push_str(&format!(" (did you mean '{s}'?)"));
                    }
                    return Err(msg);
                }
                ParamValue::String(text.to_string())
            }
        };
        self.check_bounds(v)
    }

    /// Parse a value from a values file or a script default.
    pub(crate) fn parse_data(&self, d: &Dynamic) -> Result<ParamValue, String> {
        if let Some(s) = d.clone().try_cast::<rhai::ImmutableString>() {
            return self.parse_text(&s);
        }
        let v = match (&self.ty, d) {
            (ParamType::Int, d) if d.is_int() => ParamValue::Int(d.as_int().unwrap_or_default()),
            (ParamType::Bool, d) if d.is_bool() => ParamValue::Bool(d.as_bool().unwrap_or_default()),
            (ParamType::Duration, d) if d.is_int() => {
                let s = d.as_int().unwrap_or_default();
                return self.parse_text(&s.to_string());
            }
            (ParamType::List | ParamType::IntList, d) if d.is_array() => {
                let items: Vec<String> =
                    d.clone().into_array().unwrap_or_default().iter().map(crate::value::display).collect();
                return self.parse_text(&items.join(","));
            }
            (ParamType::String | ParamType::Enum(_), d) if d.is_int() || d.is_float() || d.is_bool() => {
                return self.parse_text(&d.to_string());
            }
            _ => {
                return Err(format!("{} wants a {}, got a {}", self.flag(), self.ty.describe(), d.type_name()));
            }
        };
        self.check_bounds(v)
    }

    fn check_bounds(&self, v: ParamValue) -> Result<ParamValue, String> {
        if let ParamValue::Int(i) = v {
            if let Some(min) = self.min.filter(|m| i < *m) {
                return Err(format!("{} must be at least {min}, got {i}", self.flag()));
            }
            if let Some(max) = self.max.filter(|m| i > *m) {
                return Err(format!("{} must be at most {max}, got {i}", self.flag()));
            }
        }
        Ok(v)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" | "" => Some(false),
        _ => None,
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

const SPEC_KEYS: &[&str] = &[
    "name",
    "type",
    "values",
    "default_value",
    "required",
    "doc",
    "env",
    "secret",
    "aliases",
    "off_aliases",
    "min",
    "max",
];
const TYPES: &[&str] = &["string", "int", "bool", "duration", "list", "int_list", "enum"];

/// Read the declarations returned by a playbook's `params()`. Reports every problem.
pub(crate) fn parse_specs(decl: &Dynamic) -> Result<Vec<ParamSpec>, Vec<ParamError>> {
    let Some(items) = decl.clone().try_cast::<rhai::Array>() else {
        return Err(vec![ParamError::new(
            format!("params() must return an array of maps, got a {}", decl.type_name()),
            None,
        )]);
    };
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(map) = item.clone().try_cast::<Map>() else {
            errors.push(ParamError::new(
                format!("params()[{i}] must be a map like #{{ name: \"x\", type: \"string\" }}"),
                None,
            ));
            continue;
        };
        match parse_one(&map) {
            Ok(spec) => {
                for flag in spec.flag_names().chain(spec.off_aliases.iter().cloned()) {
                    if RESERVED.iter().any(|r| r.name == flag) || RESERVED_FOR_LATER.contains(&flag.as_str()) {
                        errors.push(ParamError::new(
                            format!("parameter '{}': --{flag} is a kmsctl run option; choose another name", spec.name),
                            None,
                        ));
                    }
                    if !seen.insert(flag.clone()) {
                        errors.push(ParamError::new(format!("parameter flag --{flag} is declared twice"), None));
                    }
                }
                specs.push(spec);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() { Ok(specs) } else { Err(errors) }
}

fn parse_one(map: &Map) -> Result<ParamSpec, Vec<ParamError>> {
    let name = map.get("name").and_then(|v| v.clone().into_string().ok()).unwrap_or_default();
    let who = if name.is_empty() { "a parameter".to_string() } else { format!("parameter '{name}'") };
    let mut errors = Vec::new();
    let mut err = |m: String| errors.push(ParamError::new(m, None));

    for key in map.keys() {
        if !SPEC_KEYS.contains(&key.as_str()) {
            let hint =
                suggest(key, SPEC_KEYS.iter().copied()).map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default();
            err(format!("{who}: unknown key '{key}'{hint}"));
        }
    }
    let valid_name = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        err(format!("{who}: name must be snake_case like num_parties"));
    }
    let get_str = |k: &str| map.get(k).and_then(|v| v.clone().into_string().ok());
    let get_list = |k: &str| -> Vec<String> {
        match map.get(k) {
            Some(v) if v.is_string() => vec![v.to_string()],
            Some(v) => v.clone().into_array().unwrap_or_default().iter().map(|x| x.to_string()).collect(),
            None => Vec::new(),
        }
    };
    let ty_name = get_str("type").unwrap_or_else(|| "string".into());
    let ty = match ty_name.as_str() {
        "string" => ParamType::String,
        "int" => ParamType::Int,
        "bool" => ParamType::Bool,
        "duration" => ParamType::Duration,
        "list" => ParamType::List,
        "int_list" => ParamType::IntList,
        "enum" => {
            let values = get_list("values");
            if values.is_empty() {
                err(format!("{who}: an enum needs values: [\"a\", \"b\"]"));
            }
            ParamType::Enum(values)
        }
        other => {
            err(format!("{who}: unknown type '{other}'; use one of {}", TYPES.join(", ")));
            ParamType::String
        }
    };
    let get_int = |k: &str| map.get(k).and_then(|v| v.as_int().ok());
    let mut spec = ParamSpec {
        name: name.clone(),
        ty,
        default: None,
        required: map.get("required").and_then(|v| v.as_bool().ok()).unwrap_or(false),
        doc: get_str("doc").unwrap_or_default(),
        env: get_list("env"),
        secret: map.get("secret").and_then(|v| v.as_bool().ok()).unwrap_or(false),
        aliases: get_list("aliases"),
        off_aliases: get_list("off_aliases"),
        min: get_int("min"),
        max: get_int("max"),
    };
    if !spec.off_aliases.is_empty() && spec.ty != ParamType::Bool {
        err(format!("{who}: off_aliases only apply to bool parameters"));
    }
    if spec.secret && !matches!(spec.ty, ParamType::String) {
        err(format!("{who}: only string parameters can be secret"));
    }
    match map.get("default_value") {
        Some(d) if !d.is_unit() => match spec.parse_data(d) {
            Ok(v) => spec.default = Some(v),
            Err(e) => err(format!("{who}: bad default: {e}")),
        },
        // A bool is false unless given, except with an explicit `default_value: ()`: then it
        // stays unset, so a script can tell "not given" from `--no-x`.
        None if spec.ty == ParamType::Bool => spec.default = Some(ParamValue::Bool(false)),
        _ => {}
    }
    if errors.is_empty() { Ok(spec) } else { Err(errors) }
}
