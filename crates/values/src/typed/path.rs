//! Where a value sits inside the value being converted: `.posts[3].title`.

use crate::error::{is_plain_name, shown_name};

/// One step from a value into a child.
#[derive(Clone, Copy)]
pub(super) enum Step<'a> {
    /// Into an object field.
    Field(&'a str),
    /// Into an array element.
    Index(usize),
}

/// Where the value being decoded sits: a chain of steps back to the root, each borrowed from the
/// stack frame that decodes its parent, so decoding a valid value allocates nothing for paths.
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Option<Step<'a>>,
}

impl<'a> Path<'a> {
    pub(super) const ROOT: Path<'static> = Path {
        parent: None,
        step: None,
    };

    pub(super) fn child(&'a self, step: Step<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            step: Some(step),
        }
    }

    /// `.posts[3].title`, or `""` at the root.
    pub(super) fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            steps.extend(path.step);
            at = path.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            out.push_str(&step_text(*step));
        }
        out
    }

    /// The field this value is the value of, if it is one.
    pub(super) fn field_name(&self) -> Option<&'a str> {
        match self.step {
            Some(Step::Field(name)) => Some(name),
            Some(Step::Index(_)) | None => None,
        }
    }
}

/// `.name`, `["odd name"]` or `[3]`.
pub(super) fn step_text(step: Step<'_>) -> String {
    match step {
        Step::Field(name) if is_plain_name(name) => format!(".{name}"),
        Step::Field(name) => format!("[{:?}]", shown_name(name)),
        Step::Index(i) => format!("[{i}]"),
    }
}
