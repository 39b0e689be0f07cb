-- wrk script for scripts/bench-peers.sh: PUTs or GETs of random keys out
-- of a fixed key space, against dynkv's HTTP API or etcd's HTTP/JSON
-- gateway.
--
--   wrk -t2 -c64 -d10s -s scripts/bench/kv.lua URL -- MODE KEYS VALUE_BYTES
--
-- MODE is dynkv-put, dynkv-get, etcd-put or etcd-get; keys are
-- "bench-00000" to "bench-<KEYS-1>" (the same names in both systems).
-- Every request of a thread is formatted once in init, so the load
-- generator spends its CPU on sockets, not on Lua. If WRK_RESULT names a
-- file, done() writes the totals and the whole latency histogram (µs,
-- count) there, so that several wrk processes can be merged exactly.

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
	local out = {}
	for i = 1, #s, 3 do
		local a, b, c = s:byte(i, i + 2)
		local n = a * 65536 + (b or 0) * 256 + (c or 0)
		local c1 = math.floor(n / 262144) % 64
		local c2 = math.floor(n / 4096) % 64
		local c3 = math.floor(n / 64) % 64
		local c4 = n % 64
		out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
			.. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
			.. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
	end
	return table.concat(out)
end

local threads = 0

function setup(thread)
	threads = threads + 1
	thread:set("thread_id", threads)
end

local reqs = {}
local nreqs = 0

function init(args)
	local mode = args[1]
	local keys = tonumber(args[2] or "10000")
	local vbytes = tonumber(args[3] or "100")
	if not mode or not keys or not vbytes then
		error("usage: -- MODE KEYS VALUE_BYTES")
	end
	math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
	-- One random printable value per thread, so that nothing gets a
	-- trivially compressible body.
	local v = {}
	for i = 1, vbytes do
		v[i] = string.char(math.random(97, 122))
	end
	local value = table.concat(v)
	local jsonhdr = { ["Content-Type"] = "application/json" }
	local rawhdr = { ["Content-Type"] = "application/octet-stream" }
	local b64value = base64(value)
	for i = 0, keys - 1 do
		local key = string.format("bench-%05d", i)
		local r
		if mode == "dynkv-put" then
			r = wrk.format("PUT", "/kv/" .. key, rawhdr, value)
		elseif mode == "dynkv-get" then
			r = wrk.format("GET", "/kv/" .. key)
		elseif mode == "etcd-put" then
			r = wrk.format("POST", "/v3/kv/put", jsonhdr,
				'{"key":"' .. base64(key) .. '","value":"' .. b64value .. '"}')
		elseif mode == "etcd-get" then
			r = wrk.format("POST", "/v3/kv/range", jsonhdr,
				'{"key":"' .. base64(key) .. '"}')
		else
			error("unknown mode " .. mode)
		end
		reqs[i + 1] = r
	end
	nreqs = keys
end

function request()
	return reqs[math.random(nreqs)]
end

function done(summary, latency, requests)
	local path = os.getenv("WRK_RESULT")
	if not path or path == "" then
		return
	end
	local f = assert(io.open(path, "w"))
	local e = summary.errors
	f:write(string.format("requests %d\nduration_us %d\nerrors_status %d\nerrors_connect %d\nerrors_read %d\nerrors_write %d\nerrors_timeout %d\n",
		summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
	for i = 1, #latency do
		local us, count = latency(i)
		f:write(string.format("h %d %d\n", us, count))
	end
	f:close()
end
