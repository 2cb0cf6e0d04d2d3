//! How the read models and answers name things: a schema enum by its wire
//! name, a solution component by its agent and strength.

/// A serde enum's wire name (`"ultrasound"`), for read models and output.
pub fn name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `dextrose 15%`, `prp`: a component as the signals group it.
pub fn solution_label(c: &prolo_schemas::SolutionComponent) -> String {
    match c.concentration_pct {
        Some(pct) => format!("{} {pct}%", name(&c.agent)),
        None => name(&c.agent),
    }
}
