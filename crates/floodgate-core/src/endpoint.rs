//! Endpoint classes: `[[endpoint]]` maps a request path (and method) to a
//! class name that policies match on (`endpoint = "ai"`). First match wins.
//!
//! Paths are given normalised (see [`crate::path::normalize`]); globs
//! compare ASCII letters case-insensitively unless the endpoint is
//! `case_sensitive`, and one trailing slash makes no difference (`/login`
//! and `/login/` are one route), as most web frameworks route. An endpoint
//! for `GET` also covers `HEAD`, which frameworks answer with the `GET`
//! handler.

/// One endpoint class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Class name, the value of the `endpoint` attribute.
    name: String,
    /// Path glob: `*` matches any run of characters, `/` included.
    path: String,
    /// Upper-case methods it covers; empty = every method.
    methods: Vec<String>,
    /// Whether the glob compares letters exactly (default: ignoring case).
    case_sensitive: bool,
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EndpointError {
    /// The setting at fault (`"name"`, `"path"`, `"methods"`).
    pub field: &'static str,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Endpoint {
    /// Validates and builds an endpoint class.
    ///
    /// # Errors
    /// Every problem found, each naming its field.
    pub fn new(
        name: String,
        path: String,
        methods: Vec<String>,
    ) -> Result<Self, Vec<EndpointError>> {
        let mut errors = Vec::new();
        if !crate::policy::is_valid_name(&name) {
            errors.push(EndpointError {
                field: "name",
                message: format!("endpoint name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"),
            });
        }
        if !path.starts_with('/') {
            errors.push(EndpointError {
                field: "path",
                message: format!("endpoint path {path:?} must start with '/'"),
            });
        }
        let mut upper = Vec::with_capacity(methods.len());
        for m in methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                errors.push(EndpointError {
                    field: "methods",
                    message: format!("method {m:?} is not an HTTP method name"),
                });
            }
            upper.push(m.to_ascii_uppercase());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Written the way request paths are compared: `/api/%7Eme/*` must
        // meet `/api/~me/x` after that path is normalised.
        let path = crate::path::normalize(&path).into_owned();
        Ok(Endpoint {
            name,
            path,
            methods: upper,
            case_sensitive: false,
        })
    }

    /// The same class, matching paths case-sensitively when `yes`.
    #[must_use]
    pub fn with_case_sensitive(mut self, yes: bool) -> Self {
        self.case_sensitive = yes;
        self
    }

    /// Whether the glob compares letters exactly.
    pub fn case_sensitive(&self) -> bool {
        self.case_sensitive
    }

    /// The class name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path glob.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The methods covered (empty = all).
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Whether a request with `method` and `path` (no query) is in the class.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.covers(method) && {
            let (pattern, path) = (self.path.as_bytes(), path.as_bytes());
            glob(pattern, path, self.case_sensitive)
                || glob(
                    without_trailing_slash(pattern),
                    without_trailing_slash(path),
                    self.case_sensitive,
                )
        }
    }

    /// Whether the class covers `method`: every method when none is listed;
    /// `HEAD` when `GET` is listed.
    fn covers(&self, method: &str) -> bool {
        let listed = |name: &str| self.methods.iter().any(|m| m.eq_ignore_ascii_case(name));
        self.methods.is_empty()
            || listed(method)
            || (method.eq_ignore_ascii_case("HEAD") && listed("GET"))
    }
}

/// `path` without one trailing `/`, unless it is the root.
fn without_trailing_slash(path: &[u8]) -> &[u8] {
    match path {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        _ => path,
    }
}

/// `*` matches any run of bytes; everything else matches itself (ASCII
/// letters in either case unless `case_sensitive`).
fn glob(pattern: &[u8], text: &[u8], case_sensitive: bool) -> bool {
    let same = |a: u8, b: u8| {
        if case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(&b)
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && same(pattern[p], text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The endpoint classes in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointTable {
    /// Classes, first match wins.
    endpoints: Vec<Endpoint>,
}

impl EndpointTable {
    /// A table of `endpoints`, tried in order.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        EndpointTable { endpoints }
    }

    /// The class of a request, if any.
    pub fn classify(&self, method: &str, path: &str) -> Option<&str> {
        self.classify_either(method, path, None)
    }

    /// The first class `path` or the `other` reading of it (see
    /// [`crate::path::normalize_keeping_slashes`]) falls in, if any.
    pub fn classify_either(&self, method: &str, path: &str, other: Option<&str>) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| e.matches(method, path) || other.is_some_and(|o| e.matches(method, o)))
            .map(Endpoint::name)
    }

    /// The classes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, path: &str, methods: &[&str]) -> Endpoint {
        Endpoint::new(
            name.into(),
            path.into(),
            methods.iter().map(|m| m.to_string()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn globs() {
        for case_sensitive in [true, false] {
            let glob = |p: &[u8], t: &[u8]| glob(p, t, case_sensitive);
            assert!(glob(b"/api/chat/*", b"/api/chat/completions"));
            assert!(glob(b"/api/chat/*", b"/api/chat/a/b"));
            assert!(!glob(b"/api/chat/*", b"/api/chats"));
            assert!(glob(b"/api/*/x", b"/api/a/b/x"));
            assert!(glob(b"/exact", b"/exact"));
            assert!(!glob(b"/exact", b"/exact/"));
            assert!(glob(b"*", b""));
        }
    }

    #[test]
    fn paths_match_case_insensitively_unless_asked() {
        let table = EndpointTable::new(vec![
            ep("exact", "/Admin/*", &[]).with_case_sensitive(true),
            ep("ai", "/api/chat/*", &["post"]),
        ]);
        assert_eq!(table.classify("POST", "/API/Chat/completions"), Some("ai"));
        assert_eq!(table.classify("GET", "/Admin/x"), Some("exact"));
        assert_eq!(table.classify("GET", "/admin/x"), None);
        assert!(!ep("e", "/é", &[]).matches("GET", "/É"));
        // The glob is normalised like the paths it is compared with.
        let tilde = ep("t", "/api/%7eme//*", &[]);
        assert_eq!(tilde.path(), "/api/~me/*");
        assert!(tilde.matches("GET", &crate::path::normalize("/api/%7Eme/x")));
    }

    #[test]
    fn first_match_wins_and_methods_filter() {
        let table = EndpointTable::new(vec![
            ep("ai", "/api/chat/*", &["post"]),
            ep("auth", "/auth/*", &[]),
            ep("api", "/api/*", &[]),
        ]);
        assert_eq!(table.classify("POST", "/api/chat/x"), Some("ai"));
        assert_eq!(table.classify("GET", "/api/chat/x"), Some("api"));
        assert_eq!(table.classify("GET", "/auth/login"), Some("auth"));
        assert_eq!(table.classify("GET", "/other"), None);
    }

    #[test]
    fn one_trailing_slash_makes_no_difference() {
        let login = ep("login", "/v1/login", &["POST"]);
        assert!(login.matches("POST", "/v1/login"));
        assert!(login.matches("POST", "/v1/login/"));
        assert!(!login.matches("POST", "/v1/login/x"));
        assert!(!login.matches("POST", "/v1/logins"));
        let dir = ep("dir", "/admin/", &[]);
        assert!(dir.matches("GET", "/admin"));
        assert!(dir.matches("GET", "/admin/"));
        let api = ep("api", "/api/*", &[]);
        assert!(api.matches("GET", "/api/"));
        assert!(!api.matches("GET", "/apix"));
        let root = ep("root", "/", &[]);
        assert!(root.matches("GET", "/"));
        assert!(!root.matches("GET", "/x"));
    }

    #[test]
    fn get_covers_head() {
        let items = ep("items", "/items", &["GET"]);
        assert!(items.matches("HEAD", "/items"));
        assert!(items.matches("head", "/items"));
        assert!(!items.matches("POST", "/items"));
        let post = ep("post", "/items", &["POST"]);
        assert!(!post.matches("HEAD", "/items"));
    }

    #[test]
    fn refuses_bad_endpoints() {
        let errs = Endpoint::new("a b".into(), "api".into(), vec!["P0ST".into()]).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "path", "methods"]);
    }
}
