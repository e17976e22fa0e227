-- token-injector: adds header x-iam-token from the PluginConfig's AccessToken to every
-- request (mount it on outbound-http). Without a config the request passes untouched.
function on_request(req, ctx)
  local config = ctx.config
  if config and config.AccessToken then
    req.headers:set("x-iam-token", config.AccessToken)
  end
end
