//! The storage's writes as internal mutations of the backend itself (`_system/storage:*`), so
//! that on a follower node they are forwarded to the committer like the app's own mutations.
//! Clients never reach them (they are internal); the backend runs them as its own code.

use keel_db::STORAGE_TABLE;
use keel_values::{Object, Value};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::upload::use_token;
use super::{invalid_storage_id, parse_storage_id};
use crate::backend::Backend;
use crate::calls::CallDepth;
use crate::context::MutationCtx;
use crate::error::FunctionError;
use crate::identity::Identity;
use crate::registry::FunctionRegistry;
use crate::runner::Origin;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewFile {
    storage_key: String,
    size: f64,
    sha256: String,
    content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FinishUpload {
    token: String,
    #[serde(flatten)]
    file: NewFile,
}

#[derive(Deserialize)]
struct FileId {
    id: String,
}

#[derive(Deserialize)]
struct NoArgs {}

fn fields(file: NewFile) -> Object {
    let mut fields = Object::new();
    fields.insert(super::KEY_FIELD.into(), file.storage_key.into());
    fields.insert("size".into(), Value::Int64(file.size as i64));
    fields.insert("sha256".into(), file.sha256.into());
    if let Some(content_type) = file.content_type {
        fields.insert("contentType".into(), content_type.into());
    }
    fields
}

async fn insert_file(ctx: &MutationCtx, file: NewFile) -> Result<String, FunctionError> {
    let fields = fields(file);
    let id = ctx
        .tx()
        .with(async move |tx| tx.system_insert(STORAGE_TABLE, fields).await)
        .await?;
    Ok(id.to_string())
}

async fn finish_upload(ctx: MutationCtx, args: FinishUpload) -> Result<String, FunctionError> {
    let token = args.token;
    ctx.tx()
        .with_function(async move |tx| use_token(tx, &token).await)
        .await?;
    insert_file(&ctx, args.file).await
}

async fn insert(ctx: MutationCtx, args: NewFile) -> Result<String, FunctionError> {
    insert_file(&ctx, args).await
}

async fn delete(ctx: MutationCtx, args: FileId) -> Result<Value, FunctionError> {
    ctx.storage().delete(&args.id).await?;
    Ok(Value::Null)
}

async fn issue_upload_token(ctx: MutationCtx, _: NoArgs) -> Result<String, FunctionError> {
    ctx.storage().generate_upload_url().await
}

/// Registers the storage's internal mutations.
pub(crate) fn register(functions: &mut FunctionRegistry) {
    functions
        .internal_mutation("_system/storage:finishUpload", finish_upload)
        .internal_mutation("_system/storage:insert", insert)
        .internal_mutation("_system/storage:delete", delete)
        .internal_mutation("_system/storage:generateUploadUrl", issue_upload_token);
}

impl Backend {
    /// Runs one of the backend's own mutations (forwarded to the committer on a follower).
    pub(crate) async fn system_mutation<R: DeserializeOwned>(
        &self,
        path: &str,
        args: impl Serialize,
    ) -> Result<R, FunctionError> {
        let path = keel_protocol::normalize_udf_path(path).map_err(FunctionError::InvalidCall)?;
        let args = keel_values::to_args(&args)
            .map_err(|e| FunctionError::internal(format!("the arguments for {path}: {e}")))?;
        let run = self.mutation(
            &path,
            args,
            &Identity::Anonymous,
            None,
            Origin::App(CallDepth::TOP),
        );
        let (value, _) = Box::pin(run).await?;
        keel_values::from_value(&value)
            .map_err(|e| FunctionError::internal(format!("the result of {path}: {e}")))
    }
}

/// The storage id `id` parsed, or the error naming it.
pub(crate) fn storage_id(id: &str) -> Result<keel_values::DocumentId, FunctionError> {
    parse_storage_id(id).ok_or_else(|| invalid_storage_id(id))
}
