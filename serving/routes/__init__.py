"""The API's route modules; :data:`serving.app.ROUTER_MODULES` lists them in one place."""
