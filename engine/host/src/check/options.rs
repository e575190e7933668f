//! Keys of an options map literal that the function it is given to does not take:
//! `kc.apply(m, #{ namspace: "x" })` is found before anything runs, from the keys each native
//! function declares (the same list its body checks).

use rhai::{Expr, Position};

/// A finding: where, what, and the help.
pub(super) struct Finding {
    pub pos: Position,
    pub message: String,
    pub help: String,
}

/// Every key of `arg` (when it is a map literal) that `keys` lacks.
pub(super) fn unknown_keys(arg: Option<&Expr>, keys: &[&str], func: &str, call: Position) -> Vec<Finding> {
    let given: Vec<(String, Position)> = match arg {
        Some(Expr::Map(m, _)) => m.0.iter().map(|(k, _)| (k.name.to_string(), k.pos)).collect(),
        // A literal of constants only, folded by the optimizer: its keys, at the call.
        Some(Expr::DynamicConstant(v, _)) => {
            v.read_lock::<rhai::Map>().map(|m| m.keys().map(|k| (k.to_string(), call)).collect()).unwrap_or_default()
        }
        _ => return Vec::new(),
    };
    given
        .into_iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, pos)| {
            let near = crate::suggest::suggest(&k, keys.iter().copied())
                .map(|s| format!("did you mean '{s}'? "))
                .unwrap_or_default();
            Finding {
                pos,
                message: format!("{func}: unknown option '{k}'"),
                help: format!("{near}options are {}", keys.join(", ")),
            }
        })
        .collect()
}
