import Persona
import PlatformCore

await PlatformMain.run(PersonaService())
