//! [`Params`]: the path parameters of a match, and the percent-decoding of path segments. Below
//! `matching` (which fills them) and `context` (which hands them to hooks).

/// Path parameters of a match (`{id}` → `"abc"`), percent-decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `%XX` escapes decoded (invalid UTF-8 is replaced; `+` stays `+` in paths).
pub(crate) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
