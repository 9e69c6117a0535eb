//! Forwarding through the super cluster's API server: pod subresources `log`, `exec`, `attach` and
//! `portforward`, sent with the agent's own credentials (kubeconfig or in-cluster service account; the API
//! server's certificate verified against the configured CA). The kubelet query is mapped to the API server's
//! (`input`→`stdin`, `output`→`stdout`, `error`→`stderr`, `port`→`ports`, the container as `container`).
//! `/run` has no API-server subresource: it runs through `pods/exec` ([`crate::run`]).

use http_body_util::BodyExt;

use crate::forward::{BoxError, ForwardError, ForwardFuture, Forwarder, Upstream};
use crate::route::{Verb, push_query};

/// Forwarder to the super API server.
#[derive(Clone)]
pub struct ApiServerForwarder {
    client: kube::Client,
}

impl std::fmt::Debug for ApiServerForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerForwarder").finish_non_exhaustive()
    }
}

impl ApiServerForwarder {
    /// A forwarder using `config` (its cluster URL, CA and credentials).
    pub fn new(config: kube::Config) -> Result<Self, ForwardError> {
        Ok(ApiServerForwarder {
            client: kube::Client::try_from(config)?,
        })
    }
}

/// The API server path and query for a translated request (`None` for verbs it has no subresource for).
pub fn apiserver_path(request: &Upstream) -> Option<String> {
    let subresource = match request.verb {
        Verb::Logs => "log",
        Verb::Exec => "exec",
        Verb::Attach => "attach",
        Verb::PortForward => "portforward",
        Verb::Run => return None,
    };
    let mut path = format!(
        "/api/v1/namespaces/{}/pods/{}/{subresource}",
        request.namespace, request.pod
    );
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(container) = &request.container {
        query.push(("container", container));
    }
    for (key, value) in &request.query {
        let key = match key.as_str() {
            "input" => "stdin",
            "output" => "stdout",
            "error" => "stderr",
            "port" => "ports",
            other => other,
        };
        query.push((key, value));
    }
    push_query(&mut path, query);
    Some(path)
}

impl Forwarder for ApiServerForwarder {
    fn forward(&self, request: Upstream) -> ForwardFuture<'_> {
        Box::pin(async move {
            if request.verb == Verb::Run {
                return crate::run::run_via_exec(&self.client, &request).await;
            }
            let path = apiserver_path(&request).ok_or(ForwardError::Unsupported("/run"))?;
            let mut req = http::Request::builder()
                .method(request.method)
                .uri(path)
                .body(kube::client::Body::empty())?;
            req.headers_mut().extend(request.headers);
            let response = self.client.send(req).await?;
            Ok(response.map(|body| body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
        })
    }

    fn mode(&self) -> &'static str {
        "apiserver"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(verb: Verb, container: Option<&str>, query: &[(&str, &str)]) -> Upstream {
        Upstream {
            verb,
            method: http::Method::GET,
            namespace: "sns".into(),
            pod: "sp".into(),
            uid: None,
            container: container.map(str::to_string),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: http::HeaderMap::new(),
        }
    }

    #[test]
    fn kubelet_query_maps_to_the_api_server_query() {
        let exec = upstream(
            Verb::Exec,
            Some("app"),
            &[
                ("command", "echo"),
                ("command", "hi"),
                ("input", "1"),
                ("output", "1"),
                ("error", "1"),
                ("tty", "1"),
            ],
        );
        assert_eq!(
            apiserver_path(&exec).as_deref(),
            Some(
                "/api/v1/namespaces/sns/pods/sp/exec?container=app&command=echo&command=hi&stdin=1&stdout=1&stderr=1&tty=1"
            )
        );
        let pf = upstream(Verb::PortForward, None, &[("port", "80"), ("port", "443")]);
        assert_eq!(
            apiserver_path(&pf).as_deref(),
            Some("/api/v1/namespaces/sns/pods/sp/portforward?ports=80&ports=443")
        );
        let logs = upstream(
            Verb::Logs,
            Some("app"),
            &[("follow", "true"), ("tailLines", "3")],
        );
        assert_eq!(
            apiserver_path(&logs).as_deref(),
            Some("/api/v1/namespaces/sns/pods/sp/log?container=app&follow=true&tailLines=3")
        );
        let attach = upstream(Verb::Attach, Some("app"), &[("output", "1")]);
        assert_eq!(
            apiserver_path(&attach).as_deref(),
            Some("/api/v1/namespaces/sns/pods/sp/attach?container=app&stdout=1")
        );
        assert_eq!(apiserver_path(&upstream(Verb::Run, Some("app"), &[])), None);
    }
}
