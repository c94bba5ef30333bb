//! The JSON body of an `/api` request: one that cannot be read is a 400 in the API's error
//! shape, saying what is wrong with it. Knows nothing of what any body means.

use axum::Json;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::web::Error;

/// A request body read as JSON into `T`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(e) => Err(Error::BadRequest(format!("the request body must be a JSON object: {}", e.body_text()))),
        }
    }
}
