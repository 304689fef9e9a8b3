//! serde's `rename_all` cases, applied to a Rust field name (snake_case).

/// A `rename_all` case.
#[derive(Clone, Copy)]
pub(crate) enum Case {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl Case {
    /// The case serde names `name`, or `None` for a name serde does not know.
    pub(crate) fn parse(name: &str) -> Option<Case> {
        Some(match name {
            "lowercase" => Case::Lower,
            "UPPERCASE" => Case::Upper,
            "PascalCase" => Case::Pascal,
            "camelCase" => Case::Camel,
            "snake_case" => Case::Snake,
            "SCREAMING_SNAKE_CASE" => Case::ScreamingSnake,
            "kebab-case" => Case::Kebab,
            "SCREAMING-KEBAB-CASE" => Case::ScreamingKebab,
            _ => return None,
        })
    }

    /// A field's name in this case, as serde writes it.
    pub(crate) fn apply(self, field: &str) -> String {
        match self {
            Case::Lower | Case::Snake => field.to_owned(),
            Case::Upper | Case::ScreamingSnake => field.to_ascii_uppercase(),
            Case::Pascal | Case::Camel => {
                let mut out = String::new();
                let mut capitalize = matches!(self, Case::Pascal);
                for c in field.chars() {
                    if c == '_' {
                        capitalize = true;
                    } else if capitalize {
                        out.push(c.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            Case::Kebab => field.replace('_', "-"),
            Case::ScreamingKebab => field.replace('_', "-").to_ascii_uppercase(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Case;

    #[test]
    fn cases_follow_serde() {
        assert_eq!(Case::Camel.apply("author_id"), "authorId");
        assert_eq!(Case::Pascal.apply("author_id"), "AuthorId");
        assert_eq!(Case::ScreamingSnake.apply("author_id"), "AUTHOR_ID");
        assert_eq!(Case::Kebab.apply("author_id"), "author-id");
        assert_eq!(Case::Snake.apply("author_id"), "author_id");
        assert!(Case::parse("Camel").is_none());
    }
}
