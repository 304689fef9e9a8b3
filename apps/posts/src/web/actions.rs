//! Server functions behind the posts forms (the new-post form may carry an image file). Each calls the backend with the visitor's token;
//! the backend enforces who may do what (the page's sign-in check is only UX).

use keel_client::ClientError;
use keel_start::{RouteError, ServerFnResponse, Start};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::root::form_error;
use crate::api;
use crate::functions::posts::{CreateArgs, IdArgs, ImportArgs};
use crate::functions::users::NoArgs;

pub(super) fn register(start: Start) -> Start {
    start
        .server_fn("posts/create", |req| async move {
            let client = req.authenticated_client().await?;
            let mut args = CreateArgs {
                title: req.field("title").unwrap_or_default().to_owned(),
                body: req.field("body").unwrap_or_default().to_owned(),
                image_id: None,
            };
            // The form's optional image: stored through the backend's upload URL, then given
            // to posts:create by its storage id.
            if let Some(image) = req.file("image") {
                let content_type = image.content_type.as_deref().unwrap_or_default();
                if !content_type.starts_with("image/") {
                    return Ok(ServerFnResponse::Redirect(format!(
                        "/posts?error={}",
                        encode("The image must be an image file (PNG, JPEG, GIF …)")
                    )));
                }
                let stored = async {
                    let url = client
                        .mutation(api::files::GENERATE_UPLOAD_URL, NoArgs {})
                        .await?;
                    client
                        .upload_file(&url, Some(content_type), image.bytes.to_vec())
                        .await
                }
                .await;
                match stored {
                    Ok(id) => args.image_id = Some(id),
                    Err(error) => return back_to_posts(Err(error)),
                }
            }
            let result = client.mutation(api::posts::CREATE, args).await;
            back_to_posts(result.map(|_| ()))
        })
        .server_fn("posts/remove", |req| async move {
            let client = req.authenticated_client().await?;
            let id = req.field("id").unwrap_or_default().to_owned();
            let result = client.mutation(api::posts::REMOVE, IdArgs { id }).await;
            back_to_posts(result)
        })
        .server_fn("posts/importSample", |req| async move {
            let client = req.authenticated_client().await?;
            let result = client
                .action(api::posts::IMPORT_SAMPLE, ImportArgs { count: 5 })
                .await;
            back_to_posts(result.map(|_| ()))
        })
}

/// `303 /posts`, with the backend's message for the visitor when the call was refused.
fn back_to_posts(result: Result<(), ClientError>) -> Result<ServerFnResponse, RouteError> {
    match result {
        Ok(()) => Ok(ServerFnResponse::Redirect("/posts".to_owned())),
        // A `ConvexError` is meant for the caller: show it on the form.
        Err(ClientError::Application { message, .. }) => Ok(ServerFnResponse::Redirect(format!(
            "/posts?error={}",
            encode(&message)
        ))),
        Err(other) => {
            let error = RouteError::from(other);
            tracing::error!(%error, "posts action failed");
            Ok(ServerFnResponse::Redirect(format!(
                "/posts?error={}",
                encode(&form_error(&error))
            )))
        }
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}
