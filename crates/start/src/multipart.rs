//! `multipart/form-data` bodies (RFC 7578) of server functions, so that a form with a file
//! input works without JavaScript: text parts become fields, file parts [`UploadedFile`]s.
//!
//! The body is read whole, up to [`MAX_MULTIPART_BYTES`]; a part without a
//! `Content-Disposition: form-data; name="…"`, a body that does not follow the boundary, or
//! more than [`MAX_PARTS`] parts is refused.

use bytes::Bytes;

/// Largest multipart body a server function receives (10 MiB).
pub const MAX_MULTIPART_BYTES: usize = 10 << 20;
/// Most parts one body may have.
pub(crate) const MAX_PARTS: usize = 100;

/// A file sent with a form (`<input type="file" name="…">`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedFile {
    /// The part's `filename` (as the browser sent it; empty when no file was chosen).
    pub file_name: String,
    /// The part's `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// The file's bytes.
    pub bytes: Bytes,
}

/// A body's text fields and files.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MultipartForm {
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) files: Vec<(String, UploadedFile)>,
}

/// Why a multipart body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed multipart/form-data body: {0}")]
pub(crate) struct MultipartError(&'static str);

/// The `boundary` parameter of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("boundary"))
            .then(|| value.trim().trim_matches('"'))
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Where `needle` first occurs in `haystack` (linear time, whatever the bytes).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// A `name="value"` parameter of a `Content-Disposition` header.
fn disposition_param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Parses `body` delimited by `boundary`.
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Result<MultipartForm, MultipartError> {
    let delimiter = format!("--{boundary}");
    let mut form = MultipartForm::default();
    let start = find(body, delimiter.as_bytes()).ok_or(MultipartError("no boundary"))?;
    let mut at = start + delimiter.len();
    let next_delimiter = format!("\r\n--{boundary}");
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(form);
        }
        if !rest.starts_with(b"\r\n") {
            return Err(MultipartError("a boundary is not followed by a line break"));
        }
        at += 2;
        if form.fields.len() + form.files.len() >= MAX_PARTS {
            return Err(MultipartError("too many parts"));
        }
        let headers_end =
            find(&body[at..], b"\r\n\r\n").ok_or(MultipartError("a part has no end of headers"))?;
        let headers = std::str::from_utf8(&body[at..at + headers_end])
            .map_err(|_| MultipartError("a part's headers are not UTF-8"))?;
        at += headers_end + 4;
        let content_end = find(&body[at..], next_delimiter.as_bytes())
            .ok_or(MultipartError("a part has no closing boundary"))?;
        let content = body.slice(at..at + content_end);
        at += content_end + next_delimiter.len();
        let mut disposition = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(value.trim());
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let disposition = disposition.ok_or(MultipartError("a part has no Content-Disposition"))?;
        if !disposition
            .split(';')
            .next()
            .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("form-data"))
        {
            return Err(MultipartError("a part is not form-data"));
        }
        let name = disposition_param(disposition, "name")
            .ok_or(MultipartError("a part has no name"))?
            .to_owned();
        match disposition_param(disposition, "filename") {
            Some(file_name) => form.files.push((
                name,
                UploadedFile {
                    file_name: file_name.to_owned(),
                    content_type,
                    bytes: content,
                },
            )),
            None => {
                let text = String::from_utf8(content.to_vec())
                    .map_err(|_| MultipartError("a text field is not UTF-8"))?;
                form.fields.push((name, text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\
        Content-Type: image/png\r\n\r\n\x01\r\n\x02\r\n--XyZ--\r\n";

    #[test]
    fn fields_and_files_are_read() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ"), Some("XyZ"));
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        let form = parse(&Bytes::from_static(BODY.as_bytes()), "XyZ").unwrap();
        assert_eq!(form.fields, vec![("title".to_owned(), "Hello".to_owned())]);
        let (name, file) = &form.files[0];
        assert_eq!(name, "image");
        assert_eq!(file.file_name, "a.png");
        assert_eq!(file.content_type.as_deref(), Some("image/png"));
        assert_eq!(&file.bytes[..], b"\x01\r\n\x02");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            "",
            "--XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
            "--XyZ\r\nX: y\r\n\r\nv\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--XyZ--",
            "--XyZ\r\nContent-Disposition: form-data\r\n\r\nv\r\n--XyZ--",
            "--XyZjunk",
        ] {
            assert!(parse(&Bytes::from(bad), "XyZ").is_err(), "{bad:?}");
        }
        let many: String = (0..=MAX_PARTS)
            .map(|n| format!("--B\r\nContent-Disposition: form-data; name=\"f{n}\"\r\n\r\nv\r\n"))
            .collect::<String>()
            + "--B--";
        assert_eq!(
            parse(&Bytes::from(many), "B"),
            Err(MultipartError("too many parts"))
        );
    }
}
