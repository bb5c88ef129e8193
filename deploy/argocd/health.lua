-- Argo CD health check for the Connection and Credential resources (connectors.dev).
-- Argo CD runs it with the live object in the global `obj` (gopher-lua, Lua 5.1)
-- and reads the returned table's `status` and `message`.
--
--   Progressing  the operator has not acted on the latest spec yet (observedGeneration
--                behind metadata.generation), or Ready is Unknown or not there yet
--   Suspended    a Connection with spec.suspend: true (or Ready reason Suspended)
--   Healthy      Ready is True
--   Degraded     Ready is False: the message is the condition's reason and message
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local generation = obj.metadata.generation
local observed = nil
if obj.status ~= nil then
  observed = obj.status.observedGeneration
end
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
local suspended = obj.kind == "Connection" and obj.spec ~= nil and obj.spec.suspend == true
if suspended or (ready ~= nil and ready.reason == "Suspended") then
  hs.status = "Suspended"
  local workload = condition("WorkloadReady")
  if ready ~= nil and ready.reason == "Suspended" then
    hs.message = ready.message
  elseif workload ~= nil and workload.message ~= nil then
    hs.message = "spec.suspend is true: " .. workload.message
  else
    hs.message = "spec.suspend is true"
  end
  return hs
end

if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  else
    hs.message = "waiting for the Ready condition"
  end
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

hs.status = "Degraded"
hs.message = tostring(ready.reason) .. ": " .. tostring(ready.message or "")
return hs
