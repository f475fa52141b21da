"""The call API: remote commands sent over HTTP that wait for the station's answer, presence,
and a queue for stations that are offline (docs/call-api.md)."""
