# A simulation of cronie's main loop (cron.c): a minute-by-minute clock with its
# time-change cases. Prints the CRONIE table of tests/dst.rs:
#   python3 tests/tools/cronie_table.py
from zoneinfo import ZoneInfo
from datetime import datetime, timedelta, timezone

def field(text, lo, hi):
    vals=set()
    for item in text.split(','):
        step=1
        if '/' in item: item, step = item.split('/'); step=int(step)
        if item=='*': a,b=lo,hi
        elif '-' in item: a,b=map(int,item.split('-'))
        else: a=b=int(item)
        vals.update(range(a,b+1,step))
    return vals

class Line:
    def __init__(self, text):
        if text=='@daily': text='0 0 * * *'
        m,h,_,_,_=text.split()
        self.m=field(m,0,59); self.h=field(h,0,23)
        self.wild = m.startswith('*') or h.startswith('*')
    def matches(self, local):   # local: minutes since epoch of wall time
        return (local//60)%24 in self.h and local%60 in self.m

def run(zone, text, start, end):
    tz=ZoneInfo(zone); line=Line(text)
    def localmin(t): 
        l=t.astimezone(tz).replace(tzinfo=None)
        return int((l-datetime(1970,1,1)).total_seconds())//60
    out=[]
    t=start
    virtual=localmin(t)
    while t<end:
        t=t+timedelta(minutes=1)
        running=localmin(t)
        diff=running-virtual
        def find(v, wild, nonwild):
            if line.matches(v) and ((wild and line.wild) or (nonwild and not line.wild)):
                out.append(t)
        if diff==1:
            virtual=running; find(virtual, True, True)
        elif 1<diff<=3*60:   # case 2: forward jump (DST)
            while virtual<running:
                virtual+=1
                if virtual>=running: find(virtual, True, True)
                else: find(virtual, False, True)
        elif -3*60<=diff<=0:  # case 3: backward jump: wildcard jobs only
            find(running, True, False)
        else:
            raise Exception("big jump")
    return out

transitions = {
 "Europe/Berlin": ["2026-03-29T01:00","2026-10-25T01:00","2027-03-28T01:00","2027-10-31T01:00"],
 "America/New_York": ["2026-03-08T07:00","2026-11-01T06:00","2027-03-14T07:00","2027-11-07T06:00"],
 "Australia/Lord_Howe": ["2026-04-04T15:00","2026-10-03T15:30","2027-04-03T15:00","2027-10-02T15:30"],
 "Pacific/Chatham": ["2026-04-04T14:00","2026-09-26T14:00","2027-04-03T14:00","2027-09-25T14:00"],
 "America/Santiago": ["2026-04-05T03:00","2026-09-06T04:00","2027-04-04T03:00","2027-09-05T04:00"],
 "America/Havana": ["2026-03-08T05:00","2026-11-01T05:00","2027-03-14T05:00","2027-11-07T05:00"],
 "Europe/Dublin": ["2026-03-29T01:00","2026-10-25T01:00","2027-03-28T01:00","2027-10-31T01:00"],
 "Antarctica/Troll": ["2026-03-29T01:00","2026-10-25T01:00","2027-03-28T01:00","2027-10-31T01:00"],
}
lines=["0 0-23 * * *","15,45 0-23 * * *","*/30 * * * *","0 */2 * * *","@daily"]
rows=[]
for zone, ts in transitions.items():
    for ts_ in ts:
        T=datetime.fromisoformat(ts_).replace(tzinfo=timezone.utc)
        start=T-timedelta(hours=3); end=T+timedelta(hours=3)
        for text in lines:
            if text=='@daily':
                start2=T-timedelta(hours=26); end2=T+timedelta(hours=26)
            else: start2,end2=start,end
            fires=run(zone,text,start2,end2)
            rows.append((zone,text,start2,end2,fires))
for zone,text,s,e,f in rows:
    print('    ("%s", "%s", "%s", "%s", "%s"),' % (zone,text,s.strftime("%Y-%m-%dT%H:%M"),e.strftime("%Y-%m-%dT%H:%M")," ".join(x.strftime("%m-%dT%H:%M") for x in f)))
