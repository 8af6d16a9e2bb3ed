//! Looking after a repository (`soci gc`): its tag list and manifest DELETE.
//! Both go through the one [`super::retry::Retrier`], as every request does.
use super::auth::Scope;
use super::bridge::runtime;
use super::retry::read_limited;
use super::{Conn, RegistryClient};
use crate::blob::require_sha256;
use crate::error::Result;
use soci_digest::Digest;

/// Tags asked for per page of the tag list.
const TAGS_PER_PAGE: usize = 1000;

/// Pages of the tag list followed at most (a million tags at 1000 a page):
/// a registry whose `Link` header loops cannot keep us forever.
const MAX_TAG_PAGES: usize = 1000;

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl RegistryClient {
    /// Every tag of `repo` (`GET /v2/<repo>/tags/list`, following the `Link`
    /// header's pages); an unknown repository has none.
    pub fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        runtime().block_on(self.conn.list_tags(repo))
    }

    /// Deletes manifest `digest` of `repo` (`DELETE /v2/<repo>/manifests/<digest>`;
    /// the registry then drops every tag pointing at it). `false` when the
    /// registry has no such manifest. A registry with deletes disabled answers
    /// 405, which is an error saying so.
    pub fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        require_sha256(digest)?;
        runtime().block_on(self.conn.delete_manifest(repo, digest))
    }
}

impl Conn {
    async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        let mut next = Some(self.url(repo, &format!("tags/list?n={TAGS_PER_PAGE}")));
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_TAG_PAGES {
                return Err(self.err(
                    format!("GET tags of {repo}"),
                    format!("more than {MAX_TAG_PAGES} pages of tags; stopped"),
                ));
            }
            let url = &url;
            let ctx = &format!("GET tags of {repo}");
            let (page, link) = self
                .retrier(ctx)
                .run(|t| async move {
                    let resp = self
                        .send(&Scope::Pull(repo), &t, self.http.get(url))
                        .await?;
                    match resp.status().as_u16() {
                        200 => {}
                        404 => return Ok((Vec::new(), None)),
                        _ => return Err(self.fatal_status(resp, ctx, &t).await),
                    }
                    let link = resp
                        .headers()
                        .get(reqwest::header::LINK)
                        .and_then(|v| v.to_str().ok())
                        .and_then(next_link);
                    let body =
                        read_limited(resp, &t, super::MAX_MANIFEST_SIZE, "the tag list", |m| {
                            self.err(ctx, m)
                        })
                        .await?;
                    let list: TagList = serde_json::from_slice(&body).map_err(|e| {
                        super::retry::Failure::Fatal(self.err(ctx, format!("not a tag list: {e}")))
                    })?;
                    Ok((list.tags.unwrap_or_default(), link))
                })
                .await?;
            tags.extend(page);
            // The next page's address is relative to the registry.
            next = link.map(|l| {
                if l.starts_with("http://") || l.starts_with("https://") {
                    l
                } else {
                    format!("{}{l}", self.base)
                }
            });
        }
        Ok(tags)
    }

    async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let url = &self.url(repo, &format!("manifests/{digest}"));
        let ctx = &format!("DELETE manifest {repo}@{digest}");
        self.retrier(ctx)
            .run(|t| async move {
                let resp = self
                    .send(&Scope::Delete(repo), &t, self.http.delete(url))
                    .await?;
                match resp.status().as_u16() {
                    200 | 202 | 204 => Ok(true),
                    404 => Ok(false),
                    405 => Err(super::retry::Failure::Fatal(self.err(
                        ctx,
                        "HTTP 405: the registry does not allow deletes (docker-registry: storage.delete.enabled: true)",
                    ))),
                    _ => Err(self.fatal_status(resp, ctx, &t).await),
                }
            })
            .await
    }
}

/// The target of a `Link: <URL>; rel="next"` header.
fn next_link(v: &str) -> Option<String> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            next_link(r#"</x>; rel="prev", <https://h/y>; rel=next"#).as_deref(),
            Some("https://h/y")
        );
        assert_eq!(next_link("garbage"), None);
    }
}
