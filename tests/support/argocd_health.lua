-- Runs an Argo CD health check the way Argo CD does: the live object (JSON on
-- standard input) as the global `obj`, the script's returned table as the verdict.
-- Usage: lua5.1 argocd_health.lua HEALTH.lua < object.json
-- Prints {"status": ..., "message": ...} as JSON.
local json = require("dkjson")

local text = io.read("*a")
local decoded, _, problem = json.decode(text, 1, nil)
if problem ~= nil then
  io.stderr:write("not JSON: " .. problem .. "\n")
  os.exit(2)
end
obj = decoded

local check = assert(loadfile(arg[1]))
local hs = check()
io.write(json.encode({ status = hs.status, message = hs.message }))
