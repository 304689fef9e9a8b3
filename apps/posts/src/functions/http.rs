//! The app's HTTP actions, on the site origin:
//! * `POST /posts` creates a post for the bearer of a Convex token (`Authorization: Bearer …`,
//!   JSON `{title, body}`) and answers 201 `{"id"}`; without a token 401, with a body that is
//!   not such JSON 400, and a post `posts:create` refuses 400 with its message.
//! * `POST /clerk-users-webhook` keeps `users` in step with the identity provider, as Convex's
//!   Clerk guide does: it verifies the Svix signature ([`keel_auth::webhooks`]), then
//!   `user.created` / `user.updated` run `users:upsertFromClerk` and `user.deleted` runs
//!   `users:deleteFromClerk`; other events are acknowledged and ignored. A forged, stale,
//!   replayed or malformed message is refused with 400 `{code, message}` and changes nothing.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use keel_auth::webhooks::WebhookVerifier;
use keel_backend::http::{Method, StatusCode};
use keel_backend::{ActionCtx, FunctionError, HttpRequest, HttpResponse, HttpRoutes};
use keel_values::Value;
use serde::Deserialize;
use serde_json::json;

use super::posts::CreateArgs;
use super::users::{ClerkUser, ClerkUserId};
use crate::api;

/// Where the webhook action finds its signing secret.
#[derive(Clone, Debug)]
pub enum WebhookSecret {
    /// `CLERK_WEBHOOK_SIGNING_SECRET` (Clerk's name for it), else the idp's file
    /// `<KEEL_DATA_DIR or ./.keel>/idp/webhook_secret`; read at the first webhook.
    FromEnvironment,
    /// This secret (`whsec_…`).
    Given(String),
}

impl WebhookSecret {
    fn resolve(&self) -> Option<String> {
        match self {
            WebhookSecret::Given(secret) => Some(secret.clone()),
            WebhookSecret::FromEnvironment => std::env::var("CLERK_WEBHOOK_SIGNING_SECRET")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .or_else(|| {
                    let dir = std::env::var_os("KEEL_DATA_DIR")
                        .map_or_else(|| PathBuf::from("./.keel"), PathBuf::from);
                    std::fs::read_to_string(dir.join("idp").join("webhook_secret")).ok()
                }),
        }
    }
}

/// The verifier, made from the secret once it can be found.
struct WebhookReceiver {
    secret: WebhookSecret,
    verifier: OnceLock<WebhookVerifier>,
}

/// Why the webhook action cannot verify anything: its secret is missing or unusable.
struct SecretProblem {
    code: &'static str,
    message: String,
}

impl WebhookReceiver {
    fn verifier(&self) -> Result<&WebhookVerifier, SecretProblem> {
        if let Some(v) = self.verifier.get() {
            return Ok(v);
        }
        let Some(secret) = self.secret.resolve() else {
            tracing::error!(
                "a webhook arrived but no secret is configured: set CLERK_WEBHOOK_SIGNING_SECRET"
            );
            return Err(SecretProblem {
                code: "WEBHOOK_SECRET_MISSING",
                message: "This app has no webhook signing secret (CLERK_WEBHOOK_SIGNING_SECRET)."
                    .to_owned(),
            });
        };
        let verifier = WebhookVerifier::new(&secret).map_err(|e| {
            tracing::error!(error = %e, "the webhook signing secret is unusable");
            SecretProblem {
                code: e.code(),
                message: e.to_string(),
            }
        })?;
        Ok(self.verifier.get_or_init(|| verifier))
    }
}

/// The app's routes; the webhook's secret comes from the environment
/// ([`WebhookSecret::FromEnvironment`]).
pub fn routes() -> HttpRoutes {
    routes_with(WebhookSecret::FromEnvironment)
}

/// The app's routes, the webhook verified with `secret`.
pub fn routes_with(secret: WebhookSecret) -> HttpRoutes {
    let receiver = Arc::new(WebhookReceiver {
        secret,
        verifier: OnceLock::new(),
    });
    let mut routes = HttpRoutes::new();
    routes.route(Method::POST, "/posts", create_post);
    routes.route(Method::POST, "/clerk-users-webhook", move |ctx, request| {
        clerk_users_webhook(receiver.clone(), ctx, request)
    });
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
    if !ctx.auth().is_signed_in() {
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

async fn clerk_users_webhook(
    receiver: Arc<WebhookReceiver>,
    ctx: ActionCtx,
    request: HttpRequest,
) -> Result<HttpResponse, FunctionError> {
    let verifier = match receiver.verifier() {
        Ok(v) => v,
        Err(problem) => {
            return Ok(refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                problem.code,
                &problem.message,
            ));
        }
    };
    let event = match verifier.verify(&request.headers, &request.body) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "webhook refused");
            return Ok(refused(StatusCode::BAD_REQUEST, e.code(), &e.to_string()));
        }
    };
    let applied = match event.event_type.as_str() {
        "user.created" | "user.updated" => match ClerkUser::from_event_data(&event.data) {
            Some(user) => ctx
                .run_mutation(api::users::UPSERT_FROM_CLERK, user)
                .await
                .map(drop),
            None => {
                return Ok(refused(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "The event's data has no user id.",
                ));
            }
        },
        "user.deleted" => match event.data.get("id").and_then(|v| v.as_str()) {
            Some(id) => ctx
                .run_mutation(
                    api::users::DELETE_FROM_CLERK,
                    ClerkUserId {
                        external_id: id.to_owned(),
                    },
                )
                .await
                .map(drop),
            None => {
                return Ok(refused(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "The event's data has no user id.",
                ));
            }
        },
        other => {
            tracing::debug!(event = other, "webhook event ignored");
            Ok(())
        }
    };
    match applied {
        Ok(()) => Ok(HttpResponse::json(StatusCode::OK, &json!({ "ok": true }))),
        Err(error) => {
            // Not processed: let the sender's retry of this message through.
            verifier.forget(&event.id);
            Err(error)
        }
    }
}
