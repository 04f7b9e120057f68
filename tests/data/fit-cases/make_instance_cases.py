import json, random, sys
rng = random.Random(int(sys.argv[1]))
cases = [json.loads(l) for l in open(sys.argv[2])]
ref = [json.loads(l) for l in open(sys.argv[3])]
n = 0
for c, r in zip(cases, ref):
    req = r.get('request')
    if not req or r.get('error'):
        continue
    inst = json.loads(json.dumps(req))
    hids = [h['id'] for h in c['host']['cells']]
    mode = rng.random()
    for i, cell in enumerate(inst['cells']):
        if mode < 0.3 and hids:
            cell['id'] = rng.choice(hids)          # ids that collide with host cell ids
        elif mode < 0.4:
            del cell['id']
        if cell.get('pagesize') in ('large', 'any') and rng.random() < 0.3:
            cell['pagesize'] = rng.choice([4, 2048, 1048576])
        if cell['pcpus'] and rng.random() < 0.15:
            cell['cpu_pinning'] = {str(cell['pcpus'][0]): 0}
    new = {k: v for k, v in c.items() if k not in ('flavor', 'image_props')}
    if rng.random() < 0.5:
        new['flavor'] = c.get('flavor')
    new['instance'] = inst
    new['id'] = c['id'] + 'i'
    print(json.dumps(new))
    n += 1
    if n >= int(sys.argv[4]): break
