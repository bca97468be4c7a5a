-- wrk script: each request a random office page of the fleet. The paths
-- come from the file named by $PATHS (default office-paths.txt), one per
-- line, made from the open data of the running platform:
--   curl -s http://127.0.0.1:8080/dati/uffici.csv | tail -n +2 | cut -d, -f1 | sed 's|^|/uffici/|' > office-paths.txt
local paths = {}
for line in io.lines(os.getenv("PATHS") or "office-paths.txt") do paths[#paths + 1] = line end
math.randomseed(1)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Accept-Encoding"] = "gzip"})
end
