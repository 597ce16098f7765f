"""An MCP session through the real sshd, driven by the official MCP Python SDK (PyPI `mcp`).

Usage: mcp_client.py SCENARIO SSH-ARGS... ; prints one JSON object with what it saw.
SCENARIO `session`: initialize, tools/list, run (allowed and refused), explain, help, a run
cancelled after a second. SCENARIO `killed`: starts `sleep 97` and prints `started`; the test
then kills this process and checks that the sleep is gone. SCENARIO `deploy`: files a deploy
through `run`, prints its id, waits for a line on stdin (the test approves it as root), then
asks `deploy_status` and runs the deploy.
"""
import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def result(res):
    return {"is_error": res.is_error, "structured": res.structured_content,
            "text": "".join(getattr(c, "text", "") for c in res.content)}


async def session(params, image):
    seen = {}
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            init = await s.initialize()
            seen["protocol"] = init.protocol_version
            seen["server"] = init.server_info.name
            tools = await s.list_tools()
            seen["tools"] = sorted(t.name for t in tools.tools)
            seen["read_only"] = sorted(t.name for t in tools.tools
                                       if t.annotations and t.annotations.read_only_hint)
            seen["schema_run"] = next(t.input_schema for t in tools.tools if t.name == "run")
            seen["allowed"] = result(await s.call_tool(
                "run", {"command": f"docker run --rm {image} echo through-mcp"}))
            seen["refused"] = result(await s.call_tool(
                "run", {"command": f"docker run --privileged {image} sh"}))
            seen["explain"] = result(await s.call_tool("explain", {"command": "docker ps"}))
            seen["help"] = result(await s.call_tool("help", {}))
            task = asyncio.create_task(s.call_tool("run", {"command": "sleep 96"}))
            await asyncio.sleep(2)
            task.cancel()
            try:
                await task
                seen["cancel"] = "not cancelled"
            except asyncio.CancelledError:
                seen["cancel"] = "cancelled"
            seen["after"] = result(await s.call_tool(
                "run", {"command": "docker ps --format '{{.Names}}'"}))
    return seen


async def deploy(params):
    seen = {}
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            seen["filed"] = result(await s.call_tool("run", {"command": "nh os switch"}))
            request = seen["filed"]["structured"]["request"]
            seen["pending"] = result(await s.call_tool("deploy_status", {"id": request}))
            print(json.dumps({"request": request}), flush=True)
            # The test approves it as root, then says so on our stdin.
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            seen["approved"] = result(await s.call_tool("deploy_status", {"id": request}))
            seen["ran"] = result(await s.call_tool("run", {"command": "nh os switch"}))
            seen["done"] = result(await s.call_tool("deploy_status", {"id": request}))
            seen["other"] = result(await s.call_tool("deploy_status", {"id": "ffffffff"}))
    print(json.dumps(seen), flush=True)


async def killed(params):
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            task = asyncio.create_task(s.call_tool("run", {"command": "sleep 97"}))
            await asyncio.sleep(1)
            print(json.dumps({"started": True}), flush=True)
            await task


def main():
    scenario, image, *ssh = sys.argv[1:]
    params = StdioServerParameters(command="ssh", args=ssh + ["mcp"])
    if scenario == "session":
        print(json.dumps(asyncio.run(session(params, image))), flush=True)
    elif scenario == "deploy":
        asyncio.run(deploy(params))
    else:
        asyncio.run(killed(params))


main()
