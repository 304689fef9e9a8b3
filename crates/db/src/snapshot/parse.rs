//! Reading a snapshot ZIP into checked tables and files, before anything is written: every
//! entry is unpacked within [`ImportLimits`], every line decoded, every `_id` checked, and each
//! problem reported with the entry and line it is in.

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read};

use base64::Engine;
use bytes::Bytes;
use keel_values::{DocumentId, Object, TableNumber};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::format::{
    DOCUMENTS_FILE, GENERATED_SCHEMA_FILE, README_ENTRY, STORAGE_DIR, TABLES_ENTRY,
    from_export_json,
};
use super::{ImportLimits, SnapshotError};
use crate::schema::check_table_name;

/// A document read from a snapshot (`_id` and `_creationTime` when the line has them).
#[derive(Debug)]
pub(crate) struct ParsedDocument {
    pub(crate) id: Option<DocumentId>,
    pub(crate) creation_time: Option<f64>,
    pub(crate) fields: Object,
    /// Where it came from, for errors found later (the schema refusing it).
    pub(crate) line: usize,
}

/// A table read from a snapshot.
#[derive(Debug)]
pub(crate) struct ParsedTable {
    pub(crate) name: String,
    /// From `_tables`, else from the documents' ids; `None` for a table without either.
    pub(crate) number: Option<TableNumber>,
    pub(crate) documents: Vec<ParsedDocument>,
}

impl ParsedTable {
    pub(crate) fn entry(&self) -> String {
        format!("{}/{DOCUMENTS_FILE}", self.name)
    }
}

/// A stored file read from a snapshot: its `_storage` line and its bytes (size and SHA-256
/// checked against the line).
#[derive(Debug)]
pub(crate) struct ParsedFile {
    pub(crate) id: DocumentId,
    pub(crate) creation_time: Option<f64>,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) content_type: Option<String>,
    pub(crate) bytes: Bytes,
}

/// A whole snapshot, checked.
#[derive(Debug, Default)]
pub(crate) struct ParsedSnapshot {
    /// In `_tables` order, then tables `_tables` does not list, by name.
    pub(crate) tables: Vec<ParsedTable>,
    /// `None` when the snapshot has no `_storage/documents.jsonl`.
    pub(crate) files: Option<Vec<ParsedFile>>,
}

/// The entries of a ZIP, unpacked within the limits, by name.
fn unpack(zip: Bytes, limits: &ImportLimits) -> Result<BTreeMap<String, Vec<u8>>, SnapshotError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))
        .map_err(|e| SnapshotError::InvalidZip(format!("the upload is not a readable ZIP: {e}")))?;
    if archive.len() > limits.max_entries {
        return Err(SnapshotError::TooLarge(format!(
            "the ZIP has {} entries, more than the {} allowed",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut entries = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| SnapshotError::InvalidZip(format!("entry {i} cannot be read: {e}")))?;
        let name = file
            .name()
            .map_err(|e| SnapshotError::InvalidZip(format!("entry {i} has a bad name: {e}")))?
            .into_owned();
        if file.is_dir() {
            continue;
        }
        let allowed = limits
            .max_entry_bytes
            .min(limits.max_total_bytes.saturating_sub(total));
        let mut bytes = Vec::new();
        (&mut file)
            .take(allowed.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| SnapshotError::InvalidZip(format!("{name}: cannot be unpacked: {e}")))?;
        if bytes.len() as u64 > allowed {
            return Err(SnapshotError::TooLarge(format!(
                "{name}: unpacks to more than the {} bytes allowed (per entry at most {}, in all \
                 at most {})",
                allowed, limits.max_entry_bytes, limits.max_total_bytes
            )));
        }
        total += bytes.len() as u64;
        if entries.insert(name.clone(), bytes).is_some() {
            return Err(SnapshotError::malformed(
                &name,
                None,
                "the entry appears twice",
            ));
        }
    }
    Ok(entries)
}

/// The non-empty lines of an entry, 1-based, each parsed as JSON.
fn json_lines<'a>(
    entry: &'a str,
    bytes: &'a [u8],
) -> impl Iterator<Item = Result<(usize, Json), SnapshotError>> + 'a {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(move |(i, line)| {
            serde_json::from_slice::<Json>(line)
                .map(|json| (i + 1, json))
                .map_err(|e| SnapshotError::malformed(entry, Some(i + 1), format!("not JSON: {e}")))
        })
}

/// Reads and checks a snapshot ZIP.
pub(crate) fn parse(zip: Bytes, limits: &ImportLimits) -> Result<ParsedSnapshot, SnapshotError> {
    let mut entries = unpack(zip, limits)?;
    let listed = match entries.remove(TABLES_ENTRY) {
        Some(bytes) => parse_tables(&bytes)?,
        None => Vec::new(),
    };
    let storage_lines = entries.remove(&format!("{STORAGE_DIR}/{DOCUMENTS_FILE}"));
    let mut documents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, bytes) in entries {
        if name == README_ENTRY {
            continue;
        }
        if let Some(file) = name.strip_prefix(&format!("{STORAGE_DIR}/")) {
            files.insert(file.to_owned(), bytes);
            continue;
        }
        match name.split_once('/') {
            Some((table, DOCUMENTS_FILE)) if !table.contains('/') => {
                check_table_name(table).map_err(|_| {
                    SnapshotError::malformed(
                        &name,
                        None,
                        format!("\"{table}\" is not a table that can be imported"),
                    )
                })?;
                documents.insert(table.to_owned(), bytes);
            }
            Some((table, GENERATED_SCHEMA_FILE)) if !table.contains('/') => {}
            _ => {
                return Err(SnapshotError::malformed(
                    &name,
                    None,
                    "not part of a snapshot Keel imports (expected README.md, _tables/, \
                     <table>/documents.jsonl, <table>/generated_schema.jsonl or _storage/; \
                     components are not supported)",
                ));
            }
        }
    }
    let mut tables = Vec::new();
    for (name, number) in listed {
        let bytes = documents.remove(&name).unwrap_or_default();
        tables.push(parse_table(name, Some(number), &bytes)?);
    }
    for (name, bytes) in documents {
        tables.push(parse_table(name, None, &bytes)?);
    }
    let files = match storage_lines {
        Some(lines) => Some(parse_files(&lines, files)?),
        None if files.is_empty() => None,
        None => {
            let first = files.keys().next().cloned().unwrap_or_default();
            return Err(SnapshotError::malformed(
                &format!("{STORAGE_DIR}/{first}"),
                None,
                format!("a stored file without {STORAGE_DIR}/{DOCUMENTS_FILE} describing it"),
            ));
        }
    };
    Ok(ParsedSnapshot { tables, files })
}

/// `_tables/documents.jsonl`: `{"name", "id"}` lines.
fn parse_tables(bytes: &[u8]) -> Result<Vec<(String, TableNumber)>, SnapshotError> {
    let mut tables = Vec::new();
    let (mut names, mut numbers) = (HashSet::new(), HashSet::new());
    for line in json_lines(TABLES_ENTRY, bytes) {
        let (n, json) = line?;
        let bad = |message: String| SnapshotError::malformed(TABLES_ENTRY, Some(n), message);
        let name = json.get("name").and_then(Json::as_str);
        let id = json.get("id").and_then(Json::as_u64);
        let (Some(name), Some(id)) = (name, id) else {
            return Err(bad(
                "expected {\"name\": <table>, \"id\": <table number>}".into()
            ));
        };
        check_table_name(name).map_err(|e| bad(e.to_string()))?;
        let number = u32::try_from(id)
            .ok()
            .filter(|n| *n >= TableNumber::FIRST_USER.0)
            .ok_or_else(|| bad(format!("{id} is not a user table number")))?;
        if !names.insert(name.to_owned()) || !numbers.insert(number) {
            return Err(bad(format!(
                "\"{name}\" or number {number} is listed twice"
            )));
        }
        tables.push((name.to_owned(), TableNumber(number)));
    }
    Ok(tables)
}

/// One document line: the system fields split off, the rest decoded from export JSON.
fn parse_document(entry: &str, line: usize, json: Json) -> Result<ParsedDocument, SnapshotError> {
    let bad = |message: String| SnapshotError::malformed(entry, Some(line), message);
    let Json::Object(mut map) = json else {
        return Err(bad("a document must be a JSON object".into()));
    };
    let id = match map.remove("_id") {
        None => None,
        Some(Json::String(text)) => Some(
            text.parse::<DocumentId>()
                .map_err(|e| bad(format!("bad _id: {e}")))?,
        ),
        Some(other) => return Err(bad(format!("bad _id: {other} is not a string"))),
    };
    let creation_time = match map.remove("_creationTime") {
        None => None,
        Some(Json::Number(n)) => n.as_f64().filter(|t| t.is_finite() && *t >= 0.0),
        Some(_) => None,
    };
    if creation_time.is_none() && map.contains_key("_creationTime") {
        return Err(bad("bad _creationTime: not a number of milliseconds".into()));
    }
    if let Some(system) = map.keys().find(|k| k.starts_with('_')) {
        return Err(bad(format!(
            "field \"{system}\" starts with _, which only system fields may"
        )));
    }
    let value = from_export_json(&Json::Object(map), "").map_err(|e| bad(e.to_string()))?;
    let fields = value.as_object().cloned().unwrap_or_default();
    Ok(ParsedDocument {
        id,
        creation_time,
        fields,
        line,
    })
}

fn parse_table(
    name: String,
    listed: Option<TableNumber>,
    bytes: &[u8],
) -> Result<ParsedTable, SnapshotError> {
    let entry = format!("{name}/{DOCUMENTS_FILE}");
    let mut number = listed;
    let mut documents = Vec::new();
    let mut ids = HashSet::new();
    for line in json_lines(&entry, bytes) {
        let (n, json) = line?;
        let document = parse_document(&entry, n, json)?;
        if let Some(id) = document.id {
            let expected = *number.get_or_insert(id.table);
            if id.table != expected {
                return Err(SnapshotError::malformed(
                    &entry,
                    Some(n),
                    format!(
                        "bad _id: \"{id}\" belongs to table number {}, but \"{name}\" is number {}",
                        id.table.0, expected.0
                    ),
                ));
            }
            if !ids.insert(id) {
                return Err(SnapshotError::malformed(
                    &entry,
                    Some(n),
                    format!("bad _id: \"{id}\" appears twice"),
                ));
            }
        }
        documents.push(document);
    }
    Ok(ParsedTable {
        name,
        number,
        documents,
    })
}

/// `_storage/documents.jsonl` and the files beside it (keyed by the entry name after
/// `_storage/`).
fn parse_files(
    lines: &[u8],
    mut contents: BTreeMap<String, Vec<u8>>,
) -> Result<Vec<ParsedFile>, SnapshotError> {
    let entry = format!("{STORAGE_DIR}/{DOCUMENTS_FILE}");
    // File entries by the id they start with (`<id>` or `<id>.<ext>`).
    let mut by_id: BTreeMap<String, String> = BTreeMap::new();
    for name in contents.keys() {
        let id = name.split('.').next().unwrap_or_default();
        if by_id.insert(id.to_owned(), name.clone()).is_some() {
            return Err(SnapshotError::malformed(
                &format!("{STORAGE_DIR}/{name}"),
                None,
                "a second file for the same storage id",
            ));
        }
    }
    let mut files = Vec::new();
    for line in json_lines(&entry, lines) {
        let (n, json) = line?;
        let bad = |message: String| SnapshotError::malformed(&entry, Some(n), message);
        let id = json
            .get("_id")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("a stored file needs its _id".into()))?;
        let id_text = id.to_owned();
        let id: DocumentId = id.parse().map_err(|e| bad(format!("bad _id: {e}")))?;
        let creation_time = json.get("_creationTime").and_then(Json::as_f64);
        let sha256 = json.get("sha256").and_then(Json::as_str);
        let size = json.get("size").and_then(Json::as_u64);
        let (Some(sha256), Some(size)) = (sha256, size) else {
            return Err(bad("a stored file needs sha256 (base64) and size".into()));
        };
        let content_type = match json.get("contentType") {
            None | Some(Json::Null) => None,
            Some(Json::String(c)) => Some(c.clone()),
            Some(_) => return Err(bad("contentType must be a string or null".into())),
        };
        let Some(name) = by_id.remove(&id_text) else {
            return Err(bad(format!(
                "the file of \"{id}\" is missing from {STORAGE_DIR}/"
            )));
        };
        let bytes = Bytes::from(contents.remove(&name).unwrap_or_default());
        let file_entry = format!("{STORAGE_DIR}/{name}");
        if bytes.len() as u64 != size {
            return Err(SnapshotError::malformed(
                &file_entry,
                None,
                format!("{} bytes, but its line says size {size}", bytes.len()),
            ));
        }
        let actual = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(SnapshotError::malformed(
                &file_entry,
                None,
                "its SHA-256 differs from the sha256 of its line",
            ));
        }
        files.push(ParsedFile {
            id,
            creation_time,
            sha256: sha256.to_owned(),
            size,
            content_type,
            bytes,
        });
    }
    if let Some(name) = by_id.into_values().next() {
        return Err(SnapshotError::malformed(
            &format!("{STORAGE_DIR}/{name}"),
            None,
            format!("no line of {entry} describes this file"),
        ));
    }
    Ok(files)
}
