-- wrk: tools/call get_company on a pre-initialized MCP session of tenant w0 (fake, JSON mode).
-- JSON-RPC ids must be unique within the session: thread number * 1e9 + a per-thread counter.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer tok-w0"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Mcp-Session-Id"] = os.getenv("S_SESSION")
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  n = n + 1
  local body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":'
    .. '{"name":"get_company","arguments":{"company_id":"w0-retail"}}}', tid * 1000000000 + n)
  return wrk.format(nil, nil, nil, body)
end
