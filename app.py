"""cheka: real-name registration of vehicle IoT cards (车联网卡实名登记). Wiring only."""

from chalice.app import Chalice

from chalicelib.api import inventory, system, tools, verification
from chalicelib.core.observability import wire

app = Chalice(app_name="cheka")
app.experimental_feature_flags.update(["BLUEPRINTS"])
wire(app)
for blueprint in (system.bp, tools.bp, inventory.bp, verification.bp):
    app.register_blueprint(blueprint)
