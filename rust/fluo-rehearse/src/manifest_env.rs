//! Edits of a Deployment manifest's container environment, shared by the rehearsal's copy of
//! `infra/` (settings for speed) and its failure scenarios (faults switched on).

use serde_yaml::Value;

/// Sets `name=value` in the env of the first container of the Deployment at `path` (the
/// entry's value when it is there, a new entry when not); returns the file as it was.
pub fn set_env(path: &std::path::Path, name: &str, value: &str) -> Result<String, String> {
    let original =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut doc: Value = serde_yaml::from_str(&original)
        .map_err(|e| format!("{} is not one YAML document: {e}", path.display()))?;
    let env = doc["spec"]["template"]["spec"]["containers"][0]
        .get_mut("env")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| format!("{}: the first container has no env list", path.display()))?;
    match env.iter_mut().find(|e| e["name"].as_str() == Some(name)) {
        Some(existing) => existing["value"] = value.into(),
        None => {
            let mut entry = serde_yaml::Mapping::new();
            entry.insert("name".into(), name.into());
            entry.insert("value".into(), value.into());
            env.push(Value::Mapping(entry));
        }
    }
    let text = serde_yaml::to_string(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(original)
}
