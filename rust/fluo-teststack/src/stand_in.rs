//! Serving a small axum app on a free loopback port for the length of a test: how the tests
//! stand in for services that have no Debian package (Grafana) or no local equivalent (an
//! ingress controller).

use axum::Router;
use tokio::task::JoinHandle;

/// A running stand-in server; stopped on drop.
pub struct StandIn {
    url: String,
    server: JoinHandle<()>,
}

impl StandIn {
    /// Serves `app` on `127.0.0.1:<free port>` in a background task. Panics if no port can be
    /// bound: the test cannot go on without it.
    pub async fn serve(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stand-in serves");
        });
        Self { url, server }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn serves_the_app_until_dropped() {
        let stand_in = StandIn::serve(Router::new().route("/hello", get(|| async { "hi" }))).await;
        let url = format!("{}/hello", stand_in.url());
        let http = crate::http_client();
        assert_eq!(
            http.get(&url).send().await.unwrap().text().await.unwrap(),
            "hi"
        );
        drop(stand_in);
        // The aborted task drops the listener once the runtime gets to it; a fresh client, so
        // no pooled connection from before is reused.
        crate::eventually(
            "the stand-in to stop",
            std::time::Duration::from_secs(30),
            || async {
                let refused = crate::http_client().get(&url).send().await.is_err();
                Ok::<_, String>(refused.then_some(()))
            },
        )
        .await
        .unwrap();
    }
}
