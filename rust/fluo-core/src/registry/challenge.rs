//! The `WWW-Authenticate` challenge of a registry that wants a bearer token (the token flow of
//! the distribution spec: `Bearer realm="...",service="...",scope="..."`).

/// A bearer challenge's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// The bearer challenge of a `WWW-Authenticate` value; None for other schemes (Basic) or a
/// challenge without a realm.
pub fn parse(header: &str) -> Option<Bearer> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    for (key, value) in params_of(params) {
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "service" => service = Some(value),
            "scope" => scope = Some(value),
            _ => {}
        }
    }
    Some(Bearer {
        realm: realm.filter(|r| !r.is_empty())?,
        service,
        scope,
    })
}

/// `key=value` or `key="quoted, value"` pairs separated by commas (RFC 7235 auth-params).
fn params_of(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => quoted_value(quoted),
            None => match after.split_once(',') {
                Some((v, r)) => (v.trim().to_string(), r),
                None => (after.trim().to_string(), ""),
            },
        };
        out.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The value of a quoted-string (after its opening quote) and the text after its closing one.
fn quoted_value(text: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => return (value, &text[i + 1..]),
            c => value.push(c),
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_hub_challenge_is_parsed() {
        let b = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nats:pull""#,
        )
        .expect("bearer");
        assert_eq!(b.realm, "https://auth.docker.io/token");
        assert_eq!(b.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(b.scope.as_deref(), Some("repository:library/nats:pull"));
    }

    #[test]
    fn quoted_commas_escapes_and_bare_values_are_kept() {
        let b = parse(
            r#"bearer realm=https://r.example/t, scope="repository:a/b:pull,push", service="s\"q""#,
        )
        .expect("bearer");
        assert_eq!(b.realm, "https://r.example/t");
        assert_eq!(b.scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(b.service.as_deref(), Some("s\"q"));
    }

    #[test]
    fn basic_and_realmless_challenges_are_not_bearer() {
        assert_eq!(parse(r#"Basic realm="basic-realm""#), None);
        assert_eq!(parse(r#"Bearer service="x""#), None);
        assert_eq!(parse("Bearer"), None);
    }
}
