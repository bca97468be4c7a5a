-- wrk script: the same request from one client address (no X-Forwarded-For): the rate limit at work.
request = function()
  return wrk.format("GET", "/api/v1/services/cash_withdrawal/offices?near=45.07,7.69")
end
