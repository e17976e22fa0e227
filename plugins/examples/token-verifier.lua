-- token-verifier: asks an external auth service about requests to the configured paths
-- (mount it on inbound-http). PluginConfig:
--   Verifier  "host:port" of the auth service (required to do anything)
--   Paths     request paths to check; "/api/*" matches by prefix (query strings ignored)
--   Timeout   seconds to wait for the auth service, default 1
--   FailOpen  true lets requests through when the auth service fails; default false (503)
-- The auth service gets the request's method, path and x-iam-token. 200 lets the request
-- through; any other status is returned to the caller with the auth service's body.

local function matches(paths, path)
  for _, pattern in ipairs(paths) do
    if pattern == path then return true end
    if pattern:sub(-1) == "*" and path:sub(1, #pattern - 1) == pattern:sub(1, -2) then
      return true
    end
  end
  return false
end

function on_request(req, ctx)
  local config = ctx.config
  if not (config and config.Verifier and config.Paths) then return end
  if not matches(config.Paths, req.path:match("^[^?]*")) then return end

  local res, err = http_call{
    host = config.Verifier,
    method = req.method,
    path = req.path,
    headers = {["x-iam-token"] = req.headers:get("x-iam-token")},
    timeout = config.Timeout or 1,
  }
  if not res then
    counter("verifier_errors")
    log("warn", "auth service " .. config.Verifier .. " failed: " .. err)
    if config.FailOpen then return end
    respond(503, {["content-type"] = "text/plain"}, "auth service unavailable\n")
  end
  if res.status == 200 then return end
  counter("denied")
  respond(res.status, {["content-type"] = res.headers["content-type"]}, res.body)
end
