"""Label Studio's API, the handful of calls the service makes (docs/annotation.md lists them), over httpx
with the admin token (`Authorization: Token <token>`, read from the credentials file at each client
start, never logged). Every failure (unreachable, timeout, a 5xx, an unexpected 4xx) is
`LabelStudioUnavailable`; "no such annotation" is None, so callers can tell it apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from services.annotation.errors import LabelStudioUnavailable, ProjectGone

LABEL_CONFIG = """<View>
  <Header value="Decision $decision, score $score"/>
  <Text name="explanation" value="$explanation"/>
  <Choices name="outcome" toName="explanation" choice="single" required="true">
    <Choice value="good"/><Choice value="bad"/>
  </Choices>
  <Choices name="reasoning" toName="explanation" choice="multiple">
    <Choice value="reasoning wrong"/>
  </Choices>
  <TextArea name="comment" toName="explanation" rows="3"/>
</View>"""
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]
PAGE = 100
MAX_PAGES = 1000  # 100,000 tasks: past the budget (max_open_tasks) by far


def read_token(credentials_file: Path) -> str:
    try:
        token = json.loads(credentials_file.read_text())["token"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabelStudioUnavailable(
            f"no Label Studio token in {credentials_file} ({type(exc).__name__})"
        ) from None
    return str(token)


class LabelStudioApi:
    """Implements the handlers' `LabelStudio` port."""

    def __init__(self, url: str, credentials_file: Path, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.credentials_file = credentials_file
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Token {read_token(self.credentials_file)}"}
            self._client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout_s)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"Label Studio unreachable: {type(exc).__name__}") from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code == 404 and path.startswith("/api/projects/"):
            raise ProjectGone(f"Label Studio has no project at {path}")
        if response.status_code == 401:
            await self.close()  # the token may have been rotated: read the file again next time
        if response.status_code >= 400:
            raise LabelStudioUnavailable(f"Label Studio answered {response.status_code} to {method} {path}")
        return response.json() if response.content else None

    async def ping(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                return (await client.get(f"{self.url}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    async def ensure_project(self, title: str, maximum_annotations: int) -> int:
        """The id of the project titled `title`, created with the platform's labelling config if none is;
        an existing one gets the policy's `maximum_annotations` if it has another (a changed policy)."""
        found = await self._call("GET", "/api/projects/", params={"title": title, "page_size": 100})
        results = found.get("results", []) if isinstance(found, dict) else found or []
        for project in results:
            if project.get("title") == title:
                if project.get("maximum_annotations") != maximum_annotations:
                    body = {"maximum_annotations": maximum_annotations}
                    await self._call("PATCH", f"/api/projects/{int(project['id'])}/", json=body)
                return int(project["id"])
        created = await self._call(
            "POST",
            "/api/projects/",
            json={"title": title, "label_config": LABEL_CONFIG, "maximum_annotations": maximum_annotations},
        )
        return int(created["id"])

    async def ensure_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> None:
        """One webhook of ours on the project: created, or updated if its headers changed."""
        hooks = await self._call("GET", "/api/webhooks/", params={"project": project_id}) or []
        body = {
            "project": project_id,
            "url": url,
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": WEBHOOK_ACTIONS,
            "headers": headers,
            "is_active": True,
        }
        for hook in hooks:
            if hook.get("url") == url and hook.get("project") == project_id:
                same = hook.get("headers") == headers and sorted(hook.get("actions") or []) == WEBHOOK_ACTIONS
                if not same or not hook.get("is_active", True):
                    await self._call("PATCH", f"/api/webhooks/{hook['id']}/", json=body)
                return
        await self._call("POST", "/api/webhooks/", json=body)

    async def import_tasks(self, project_id: int, data: list[dict[str, Any]]) -> list[int] | None:
        """Import tasks; their ids in order when Label Studio returns them (`return_task_ids`)."""
        answer = await self._call(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            json=[{"data": d} for d in data],
        )
        ids = answer.get("task_ids") if isinstance(answer, dict) else None
        return [int(i) for i in ids] if isinstance(ids, list) and len(ids) == len(data) else None

    async def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project (id, data, total_annotations, cancelled_annotations, updated_at)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self._call(
                "GET", "/api/tasks/", params={"project": project_id, "page": page, "page_size": PAGE}
            )
            batch = answer.get("tasks", []) if isinstance(answer, dict) else []
            found += [t for t in batch if isinstance(t, dict)] if isinstance(batch, list) else []
            total = answer.get("total") if isinstance(answer, dict) else None
            total = total if isinstance(total, int) and not isinstance(total, bool) else len(found)
            # An empty page ends it, and so does MAX_PAGES whatever `total` claims: an odd answer
            # cannot keep the sync in this loop.
            if not batch or not isinstance(batch, list) or len(found) >= total or page >= MAX_PAGES:
                return found
            page += 1

    async def task_annotations(self, task_id: int) -> list[dict[str, Any]] | None:
        """The task's annotations; None if Label Studio has no such task."""
        answer = await self._call("GET", f"/api/tasks/{task_id}/annotations/", missing_ok=True)
        return list(answer) if isinstance(answer, list) else None

    async def annotation(self, annotation_id: int) -> dict[str, Any] | None:
        answer = await self._call("GET", f"/api/annotations/{annotation_id}/", missing_ok=True)
        return answer if isinstance(answer, dict) else None
