"""The offline Hub, driven only by the real huggingface_hub, peft and transformers clients (issue 3)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading

import httpx2
import pytest
import torch
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    ModelCard,
    ModelCardData,
    get_hf_file_metadata,
    get_session,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import hf_raise_for_status
from huggingface_hub.utils.sha import git_hash
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from samdkif_peft.hub.server import serve_hub
from samdkif_peft.hub.testing import PROJECT_ROOT, run_in_fresh_process


# lm_head is 40000 x 64 float32 = 10.24 MB > the 10 MB LFS threshold, saved with the adapter via modules_to_save.
BIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=40000)
SMALL = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=64)


def _llama(seed: int = 0, **config) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **config))


@pytest.fixture(scope="module")
def lora_repo(hub_server, tmp_path_factory):
    """A LoRA adapter pushed twice; returns the repo, both commit shas and both adapter state dicts."""
    repo = f"user/lora-{os.urandom(4).hex()}"
    config = LoraConfig(target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"], init_lora_weights=False)
    model = get_peft_model(_llama(**BIG), config)
    v1 = model.push_to_hub(repo).oid
    sd1 = {k: v.clone() for k, v in get_peft_model_state_dict(model).items()}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(1.0)
    v2 = model.push_to_hub(repo).oid
    return {"repo": repo, "v1": v1, "v2": v2, "sd1": sd1, "sd2": get_peft_model_state_dict(model)}


def test_lora_push_uses_lfs_and_loads_in_fresh_process_by_id_and_old_revision(lora_repo, tmp_path):
    repo, v1, v2 = lora_repo["repo"], lora_repo["v1"], lora_repo["v2"]
    assert v1 != v2
    info = HfApi().model_info(repo, files_metadata=True)
    weights = {s.rfilename: s for s in info.siblings}["adapter_model.safetensors"]
    assert weights.size > 10_000_000 and weights.lfs is not None and weights.lfs.size == weights.size

    code = textwrap.dedent(
        f"""
        import torch
        from peft import PeftModel, get_peft_model_state_dict
        from safetensors.torch import save_file
        from transformers import LlamaConfig, LlamaForCausalLM
        for name, revision in [("latest", None), ("old", {v1!r})]:
            base = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **{BIG!r}))
            model = PeftModel.from_pretrained(base, {repo!r}, revision=revision)
            sd = {{k: v.contiguous() for k, v in get_peft_model_state_dict(model).items()}}
            save_file(sd, {str(tmp_path)!r} + f"/{{name}}.safetensors")
        """
    )
    run_in_fresh_process(code, env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    for name, expected in [("latest", lora_repo["sd2"]), ("old", lora_repo["sd1"])]:
        got = load_file(tmp_path / f"{name}.safetensors")
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), name


def test_file_metadata_headers_and_range_requests(lora_repo):
    repo = lora_repo["repo"]
    lfs_meta = get_hf_file_metadata(hf_hub_url(repo, "adapter_model.safetensors"))
    path = hf_hub_download(repo, "adapter_model.safetensors")
    data = open(path, "rb").read()
    assert lfs_meta.commit_hash == lora_repo["v2"]
    assert lfs_meta.etag == hashlib.sha256(data).hexdigest() and lfs_meta.size == len(data)
    config_meta = get_hf_file_metadata(hf_hub_url(repo, "adapter_config.json", revision=lora_repo["v1"]))
    config_bytes = open(hf_hub_download(repo, "adapter_config.json", revision=lora_repo["v1"]), "rb").read()
    assert config_meta.etag == git_hash(config_bytes) and config_meta.commit_hash == lora_repo["v1"]

    url = hf_hub_url(repo, "adapter_model.safetensors")
    part = get_session().get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert get_session().get(url, headers={"Range": "bytes=-5"}).content == data[-5:]
    bad = get_session().get(url, headers={"Range": f"bytes={len(data) + 1}-"})
    assert bad.status_code == 416 and "error" in bad.json()


def test_auto_model_from_pretrained_by_repo_id(hub_server, hub_repo_id):
    model = _llama(seed=3, **SMALL)
    model.push_to_hub(hub_repo_id)
    loaded = AutoModelForCausalLM.from_pretrained(hub_repo_id)
    expected = model.state_dict()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


def test_info_refs_files_tree_and_history(hub_server, hub_repo_id, tmp_path):
    api = HfApi()
    url = api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id and url.startswith(hub_server.endpoint)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "one.txt").write_bytes(b"one")
    first = api.upload_folder(folder_path=tmp_path, repo_id=hub_repo_id).oid
    card_data = ModelCardData(library_name="peft", tags=["medical"])  # YAML dates must not break model_info
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\ntrained: 2024-05-01\n---\n# x")
    card.push_to_hub(hub_repo_id)
    second = api.upload_file(path_or_fileobj=b"two", path_in_repo="two.txt", repo_id=hub_repo_id).oid

    info = api.model_info(hub_repo_id)
    assert info.sha == second and info.card_data.library_name == "peft" and "medical" in info.tags
    assert info.card_data.get("trained") == "2024-05-01"
    assert api.model_info(hub_repo_id, revision=first).sha == first
    assert api.model_info(hub_repo_id, revision=first[:10]).sha == first  # short shas resolve too
    assert api.list_repo_files(hub_repo_id) == [".gitattributes", "README.md", "a/b/one.txt", "two.txt"]
    assert api.list_repo_files(hub_repo_id, revision=first) == [".gitattributes", "a/b/one.txt"]
    assert [f.path for f in api.list_repo_tree(hub_repo_id)] == [".gitattributes", "README.md", "a", "two.txt"]
    sub_tree = api.list_repo_tree(hub_repo_id, path_in_repo="a", recursive=True)
    assert [f.path for f in sub_tree] == ["a/b", "a/b/one.txt"]
    assert api.repo_exists(hub_repo_id) and not api.repo_exists(hub_repo_id + "-nope")
    assert api.file_exists(hub_repo_id, "two.txt") and not api.file_exists(hub_repo_id, "two.txt", revision=first)

    refs = api.list_repo_refs(hub_repo_id)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second)] and refs.tags == []
    commits = [c.commit_id for c in api.list_repo_commits(hub_repo_id)]
    assert len(commits) == 4 and commits[0] == second and commits[2] == first  # initial, first, card, second
    assert sorted(os.listdir(snapshot_download(hub_repo_id))) == [".gitattributes", "README.md", "a", "two.txt"]
    assert sorted(os.listdir(snapshot_download(hub_repo_id, revision=first))) == [".gitattributes", "a"]
    with pytest.raises(HfHubHTTPError) as err:  # everything lives on main here
        api.create_branch(hub_repo_id, branch="dev")
    assert err.value.response.status_code == 404


def test_missing_repo_revision_and_entry_raise_the_hub_errors(lora_repo):
    api, repo = HfApi(), lora_repo["repo"]
    with pytest.raises(RepositoryNotFoundError) as err:
        api.model_info("user/never-created")
    assert err.value.response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("user/never-created", "config.json")
    with pytest.raises(RevisionNotFoundError) as err:
        api.model_info(repo, revision="no-such-branch")
    assert err.value.response.headers["X-Error-Code"] == "RevisionNotFound"
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, "adapter_config.json", revision="0" * 40)
    with pytest.raises(RemoteEntryNotFoundError) as err:
        hf_hub_download(repo, "missing.bin")
    assert err.value.response.headers["X-Error-Code"] == "EntryNotFound"
    assert err.value.response.headers["X-Repo-Commit"] == lora_repo["v2"]


def test_create_existing_repo_is_409_unless_exist_ok(hub_server, hub_repo_id):
    api = HfApi()
    api.create_repo(hub_repo_id)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(hub_repo_id)
    assert err.value.response.status_code == 409
    assert api.create_repo(hub_repo_id, exist_ok=True).repo_id == hub_repo_id


def test_token_protects_writes_but_not_reads(token_hub_server, tmp_path):
    endpoint, token = token_hub_server.endpoint, token_hub_server.token
    writer, stranger = HfApi(endpoint=endpoint, token=token), HfApi(endpoint=endpoint, token="hf_wrong")
    anonymous = HfApi(endpoint=endpoint, token=False)
    for attempt in (lambda: stranger.create_repo("user/x"), lambda: anonymous.create_repo("user/x")):
        with pytest.raises(HfHubHTTPError) as err:
            attempt()
        assert err.value.response.status_code == 401
    writer.create_repo("user/x")
    writer.upload_file(path_or_fileobj=b"\0" * 64, path_in_repo="w.bin", repo_id="user/x")  # LFS path with token
    with pytest.raises(HfHubHTTPError) as err:
        stranger.upload_file(path_or_fileobj=b"hi", path_in_repo="hi.txt", repo_id="user/x")
    assert err.value.response.status_code == 401
    assert stranger.list_repo_files("user/x") == [".gitattributes", "w.bin"]
    path = hf_hub_download("user/x", "w.bin", endpoint=endpoint, token="hf_wrong", cache_dir=tmp_path)
    assert open(path, "rb").read() == b"\0" * 64
    with pytest.raises(HfHubHTTPError):
        stranger.whoami()
    assert writer.whoami()["name"] == "user"


def test_concurrent_pushes_do_not_corrupt_each_other(hub_server, hub_repo_id):
    api, barrier, errors = HfApi(), threading.Barrier(4), []
    payloads = {i: b"\0" + os.urandom(3_000_000 + i) for i in range(4)}  # binary => LFS uploads in parallel
    repos = {i: f"{hub_repo_id}-{i % 2}" for i in range(4)}  # two repos, two concurrent commits each
    for repo in set(repos.values()):
        api.create_repo(repo)

    def push(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            api.upload_file(path_or_fileobj=payloads[i], path_in_repo=f"w{i}.bin", repo_id=repos[i])
        except Exception as exc:  # surfaced below with the thread's index
            errors.append((i, exc))

    threads = [threading.Thread(target=push, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for i, repo in repos.items():
        assert open(hf_hub_download(repo, f"w{i}.bin"), "rb").read() == payloads[i]
    for repo in set(repos.values()):
        assert len(api.list_repo_files(repo)) == 3 and len(api.list_repo_commits(repo)) == 3


def test_failed_uploads_leave_no_partial_commit(hub_server, hub_repo_id):
    api = HfApi()
    api.create_repo(hub_repo_id)
    head = api.model_info(hub_repo_id).sha
    with pytest.raises(RemoteEntryNotFoundError):  # one bad operation rejects the whole commit
        api.create_commit(
            hub_repo_id,
            [CommitOperationAdd("new.txt", b"new"), CommitOperationDelete("not-there.txt")],
            commit_message="half",
        )
    corrupt = CommitOperationAdd("w.bin", b"\0" + os.urandom(4096))
    corrupt.upload_info.sha256 = hashlib.sha256(b"something else").digest()  # bytes no longer match the pointer
    with pytest.raises((HfHubHTTPError, RuntimeError)):
        api.create_commit(hub_repo_id, [corrupt], commit_message="corrupt")
    with pytest.raises(HfHubHTTPError) as err:  # a stale parent commit is refused, not merged
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hub_repo_id, parent_commit="0" * 40)
    assert err.value.response.status_code == 412
    assert api.model_info(hub_repo_id).sha == head
    assert api.list_repo_files(hub_repo_id) == [".gitattributes"]
    assert len(api.list_repo_commits(hub_repo_id)) == 1


def _ndjson(*ops: str) -> dict[str, bytes]:
    return {"content": "\n".join(['{"key": "header", "value": {}}', *ops]).encode()}


COMMIT = "/api/models/{repo}/commit/main"
MALFORMED = [
    ("POST", "/api/repos/create", {"content": b"{not json"}, 400),
    ("POST", "/api/repos/create", {"json": {"name": "a--b"}}, 400),
    ("POST", "/api/repos/create", {"json": {"name": "r", "type": ["model"]}}, 400),
    ("POST", "/api/repos/create", {"content": iter([b'{"name": "chunked"}'])}, 411),  # no Content-Length
    ("POST", "/api/models/{repo}/preupload/main", {"json": {"files": "nope"}}, 400),
    ("POST", "/api/models/{repo}/preupload/main", {"json": {"files": [{"path": "a", "sample": 5}]}}, 400),
    ("POST", "/api/models/{repo}/preupload/main", {"content": b'{"files": [{"path": "a", "size": 1e400}]}'}, 400),
    ("POST", COMMIT, {"content": b"not ndjson\n"}, 400),
    ("POST", COMMIT, {"content": b'{"key": "file", "value": {}}\n'}, 400),
    ("POST", COMMIT, _ndjson('{"key": "file", "value": {"path": "../x", "content": ""}}'), 400),
    ("POST", COMMIT, _ndjson('{"key": "file", "value": {"path": "x", "content": "%%", "encoding": "base64"}}'), 400),
    ("POST", COMMIT, _ndjson('{"key": "lfsFile", "value": {"path": "x", "oid": "%s"}}' % ("a" * 64)), 400),
    ("POST", COMMIT, _ndjson('{"key": "rename", "value": {"path": "x"}}'), 400),
    ("POST", COMMIT, {"content": b'{"key": "header", "value": {"parentCommit": 5}}\n'}, 400),
    ("POST", COMMIT, {"content": b'{"key": "header", "value": {"parentCommit": "5"}}\n'}, 400),  # any head by prefix
    ("POST", COMMIT, {"content": b'{"key": "header", "value": {"parentCommit": "%s"}}\n' % (b"0" * 40)}, 412),
    ("POST", "/{repo}.git/info/lfs/objects/batch", {"json": {"operation": "upload", "objects": [{"oid": "x"}]}}, 400),
    ("PUT", "/_lfs/upload/forged-ticket", {"content": b"data"}, 403),
    ("POST", "/api/validate-yaml", {"json": {"content": "---\n- a: [\n---\n"}}, 400),
    ("GET", "/api/models/{repo}/tree/main/no/such/dir", {}, 404),
    ("GET", "/{repo}/resolve/%00%0A/x", {}, 404),  # control characters never reach a header
    ("GET", "/api/nothing/here", {}, 404),
    ("PATCH", "/api/models/{repo}", {}, 501),
]


@pytest.mark.parametrize("method, path, kwargs, status", MALFORMED)
def test_malformed_requests_get_hub_json_errors(lora_repo, method, path, kwargs, status):
    url = os.environ["HF_ENDPOINT"] + path.format(repo=lora_repo["repo"])
    response = get_session().request(method, url, **kwargs)
    assert response.status_code == status
    assert response.json()["error"] and response.headers["X-Error-Message"]
    with pytest.raises(BadRequestError if status == 400 else HfHubHTTPError):
        hf_raise_for_status(response)
    assert HfApi().model_info(lora_repo["repo"]).sha == lora_repo["v2"]  # nothing was committed


def test_dataset_repos(hub_server, hub_repo_id):
    api = HfApi()
    api.create_repo(hub_repo_id, repo_type="dataset")
    sha = api.upload_file(
        path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data/train.csv", repo_id=hub_repo_id, repo_type="dataset"
    ).oid
    assert api.dataset_info(hub_repo_id).sha == sha
    assert api.list_repo_refs(hub_repo_id, repo_type="dataset").branches[0].target_commit == sha
    path = hf_hub_download(hub_repo_id, "data/train.csv", repo_type="dataset")
    assert open(path, "rb").read() == b"a,b\n1,2\n"
    assert not api.repo_exists(hub_repo_id)  # a dataset is not a model


def test_cli_serves_until_ctrl_c(tmp_path):
    cmd = [sys.executable, "-m", "samdkif_peft.cli", "hub", "serve", "--root", str(tmp_path), "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = proc.stdout.readline().split()[3]
        api = HfApi(endpoint=endpoint)
        api.create_repo("user/cli")
        assert api.list_repo_files("user/cli") == [".gitattributes"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert (tmp_path / "repos" / "model" / "user--cli" / "repo.json").exists()


def test_serve_hub_context_manager(tmp_path):
    with serve_hub(tmp_path, token="site-token") as endpoint:
        api = HfApi(endpoint=endpoint, token="site-token")
        assert api.whoami()["name"] == "user"
        assert api.create_repo("ctx").repo_id == "user/ctx"  # no namespace: the Hub puts it under the user
    with pytest.raises(httpx2.ConnectError):  # stopped: nothing listens any more
        get_session().get(f"{endpoint}/api/models/user/ctx")


def test_plugin_refuses_a_huggingface_hub_already_pointing_elsewhere():
    code = "import huggingface_hub, samdkif_peft.hub.testing"
    with pytest.raises(RuntimeError, match="imported before samdkif_peft.hub.testing"):
        run_in_fresh_process(code, env={"HF_ENDPOINT": "https://huggingface.co", "HF_HUB_DISABLE_XET": "0"})
