//! The app's HTTP actions, on the site origin: `POST /posts` creates a post for the bearer of a
//! Convex token (`Authorization: Bearer …`, JSON `{title, body}`) and answers 201 `{"id"}`;
//! without a token 401, with a body that is not such JSON 400, and a post `posts:create`
//! refuses 400 with its message.

use keel_backend::http::{Method, StatusCode};
use keel_backend::{ActionCtx, FunctionError, HttpRequest, HttpResponse, HttpRoutes};
use keel_values::Value;
use serde::Deserialize;
use serde_json::json;

use super::posts::CreateArgs;
use crate::api;

/// The app's routes.
pub fn routes() -> HttpRoutes {
    let mut routes = HttpRoutes::new();
    routes.route(Method::POST, "/posts", create_post);
    routes
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPost {
    title: String,
    body: String,
}

fn refused(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::json(status, &json!({ "code": code, "message": message }))
}

async fn create_post(ctx: ActionCtx, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    if ctx.auth().user_identity().is_none() {
        return Ok(refused(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Send a Convex token as Authorization: Bearer <token>",
        ));
    }
    let Ok(post) = request.json::<NewPost>() else {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The body must be JSON {\"title\": string, \"body\": string}",
        ));
    };
    let post = CreateArgs {
        title: post.title,
        body: post.body,
        image_id: None,
    };
    match ctx.run_mutation(api::posts::CREATE, post).await {
        Ok(id) => Ok(HttpResponse::json(
            StatusCode::CREATED,
            &json!({ "id": id }),
        )),
        // The app's own refusals (a title too long …) are the client's to fix.
        Err(error)
            if error
                .error_data()
                .is_some_and(|d| matches!(d, Value::Object(_))) =>
        {
            Ok(refused(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &error.client_message(),
            ))
        }
        Err(error) => Err(error),
    }
}
