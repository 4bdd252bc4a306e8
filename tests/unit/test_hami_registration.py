"""HAMi's node registration (hami.io/node-nvidia-register), read in both formats its device plugin
writes, from real annotations: the ":"-terminated entries of HAMi before 2.8 (HAMi#1422's device-plugin
log, "patch node with the following annos", eight H20-3e GPUs) and the JSON list from 2.8 (HAMi#1520's
device-plugin log, "start working on the devices", one entry of it)."""

from __future__ import annotations

import json

from gpuwizard.parsers import HAMI_REGISTER as REGISTER_ANNOTATION
from gpuwizard.steps.hami import registration, registration_problem

# HAMi#1422 (github.com/Project-HAMi/HAMi/issues/1422), register.go:193 of its device plugin, two of its
# eight entries as logged (uuid,count,devmem,devcore,type,numa,health,index,mode)
COLON = ("GPU-40c0923a-6172-5f3c-d299-4f6eaf218ad5,10,258787,500,NVIDIA-NVIDIA H20-3e,0,true,1,mig:"
         "GPU-22e5bae0-3938-7cc7-cab3-3f2b91e20774,10,258787,500,NVIDIA-NVIDIA H20-3e,0,true,2,mig:")
# HAMi#1520 (github.com/Project-HAMi/HAMi/issues/1520), register.go:188, the first device as logged
JSON_ONE = ('[{"id":"GPU-312ab3b4-2aa8-8b2c-0ee1-ed89865621bb","index":5,"count":10,"devmem":143771,"devcore":100,'
            '"type":"NVIDIA-NVIDIA H20-3e","numa":1,"mode":"hami-core","health":true,"devicepairscore":{}}]')


def node(annotation: str | None) -> dict:
    meta: dict = {"name": "gpu-1", "annotations": {"node.alpha.kubernetes.io/ttl": "0"}}
    if annotation is not None:
        meta["annotations"][REGISTER_ANNOTATION] = annotation
    return {"metadata": meta}


def test_the_colon_format_of_hami_before_2_8():
    reg = registration(node(COLON))
    assert reg is not None and [d["id"] for d in reg] == ["GPU-40c0923a-6172-5f3c-d299-4f6eaf218ad5",
                                                          "GPU-22e5bae0-3938-7cc7-cab3-3f2b91e20774"]
    assert {(d["count"], d["devmem"], d["devcore"], d["type"], d["health"]) for d in reg} == \
        {(10, 258787, 500, "NVIDIA-NVIDIA H20-3e", True)}
    assert registration_problem(node(COLON), 2, 10) is None


def test_the_json_format_of_hami_2_8_and_later():
    reg = registration(node(JSON_ONE))
    assert reg == [{"id": "GPU-312ab3b4-2aa8-8b2c-0ee1-ed89865621bb", "count": 10, "devmem": 143771, "devcore": 100,
                    "type": "NVIDIA-NVIDIA H20-3e", "health": True}]
    assert registration_problem(node(JSON_ONE), 1, 10) is None


def test_what_a_registration_can_get_wrong():
    assert "no readable hami.io/node-nvidia-register" in str(registration_problem(node(None), 1, 10))
    assert "lists 2 GPU(s), the node has 8" in str(registration_problem(node(COLON), 8, 10))
    assert "10 vGPUs, expected 4" in str(registration_problem(node(JSON_ONE), 1, 4))
    sick = json.loads(JSON_ONE)
    del sick[0]["health"]  # omitempty: a device that is not healthy has no health field
    assert "unhealthy" in str(registration_problem(node(json.dumps(sick)), 1, 10))
    for garbage in ("[{]", "GPU-1,ten,1,1,x,0,true:", "GPU-1,10:", '{"id": "GPU-1"}'):
        assert registration(node(garbage)) is None
        assert registration_problem(node(garbage), 1, 10) is not None
