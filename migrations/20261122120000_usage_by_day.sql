-- The operator's billing export reads one month of every tenant (`where day >= $1 and
-- day < $2`): without an index starting with the day it scanned every month ever
-- rolled up (session 4's benchmark had one month, so it did not show). Also what the
-- monthly close reads.
create index usage_device_day_day_idx on usage_device_day (day);
